"""Image-quality metrics pinned to their reference implementations.

Each metric is a :class:`MetricSpec` in a registry::

    >>> from isp_bench.metrics import get_metric, list_metrics
    >>> spec = get_metric("ssim")
    >>> spec.higher_is_better, spec.full_reference
    (True, True)

Full-reference functions take ``(pred, target)`` as H×W×3 sRGB arrays in [0, 1] (numpy or torch);
no-reference ones take one image. ``spec.to_dict()`` is what results record beside every score.

Every registered metric is also a function of this package under its own name
(``isp_bench.metrics.scielab(pred, target)``). Adding a metric is one module in this folder: it
registers its :class:`MetricSpec` (default-suite membership and shared per-pair work included) and
is found here by discovery; :data:`DEFAULT_METRICS`, :func:`~isp_bench.metrics.score.score_pair` and
the ``isp-bench score`` help follow from the registry. Importing this package does not import
torch; the torch metrics (MS-SSIM, LPIPS, DeepIQA) import it when they run.
"""

import importlib as _importlib
import pkgutil as _pkgutil

from ._registry import (
    MetricError,
    MetricInputError,
    MetricSpec,
    MetricWeightsError,
    default_suite,
    get_metric,
    list_metrics,
    register_metric,
)

# Every public module of the package is imported, so each metric module registers its specs.
for _module in sorted(m.name for m in _pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
    _importlib.import_module(f"{__name__}.{_module}")

#: The default metric suite (``isp-bench run``, ``evaluate`` and ``score``): every registered
#: metric whose spec says ``default_suite=True``, in registration order.
DEFAULT_METRICS: tuple[str, ...] = default_suite()


def describe_unscored(unavailable: dict[str, str]) -> str:
    """The console lines for metrics that were not scored: one per metric with its one-line fix.

    ``unavailable`` maps metric names to the reason recorded for them (as
    :func:`~isp_bench.metrics.score.score_pair` fills it); an empty mapping gives ``""``.

    Examples
    --------
    >>> print(describe_unscored({"lpips": "LPIPS needs 'alexnet-owt-7be5be79.pth'. Fix: copy it"}))
    not scored (1 metric):
      lpips: LPIPS needs 'alexnet-owt-7be5be79.pth'. Fix: copy it
    """
    if not unavailable:
        return ""
    n = len(unavailable)
    lines = [f"not scored ({n} metric{'s' if n != 1 else ''}):"]
    lines += [f"  {name}: {' '.join(str(reason).split())}" for name, reason in unavailable.items()]
    return "\n".join(lines)


# every registered metric is callable under its own name
globals().update({_name: get_metric(_name).fn for _name in list_metrics()})

__all__ = [
    "DEFAULT_METRICS",
    "MetricError",
    "MetricInputError",
    "MetricSpec",
    "MetricWeightsError",
    "default_suite",
    "describe_unscored",
    "get_metric",
    "list_metrics",
    "register_metric",
    *list_metrics(),
]
