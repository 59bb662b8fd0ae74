"""Image-quality metrics pinned to their reference implementations.

Each metric is a :class:`MetricSpec` in a registry::

    >>> from isp_bench.metrics import get_metric, list_metrics
    >>> spec = get_metric("ssim")
    >>> spec.higher_is_better, spec.full_reference
    (True, True)

Full-reference functions take ``(pred, target)`` as H×W×3 sRGB arrays in [0, 1] (numpy or torch);
no-reference ones take one image. ``spec.to_dict()`` is what results record beside every score.

Every registered metric is also a function of this package under its own name::

    >>> import numpy as np
    >>> from isp_bench.metrics import scielab
    >>> scielab(np.full((8, 8, 3), 0.5), np.full((8, 8, 3), 0.5))
    0.0

Adding a metric is one module in this folder: it registers its :class:`MetricSpec` (default-suite
membership, tunable settings and shared per-pair work included) and is found by discovery on the
first registry lookup; :data:`DEFAULT_METRICS`, :func:`~isp_bench.metrics.score.score_pair` and the
``isp-bench score`` help follow from the registry.

Names are resolved lazily (PEP 562, as scikit-image and SciPy load their subpackages): importing
this package imports nothing else, numpy comes with the first metric name used, and torch only when
a torch metric (MS-SSIM, LPIPS, DeepIQA) runs.
"""

from __future__ import annotations

#: Names this package takes from ``_registry`` (everything else is a registered metric).
_REGISTRY_NAMES = ("ImageTooSmallError", "MetricError", "MetricInputError", "MetricSpec", "MetricWeightsError",
                   "default_suite", "get_metric", "list_metrics", "register_metric")


def describe_unscored(unavailable: dict[str, str]) -> str:
    """The console lines for metrics that were not scored: one per metric with its one-line fix.

    ``unavailable`` maps metric names to the reason recorded for them (as
    :func:`~isp_bench.metrics.score.score_pair` fills it, and ``result.json`` keeps it under
    ``unavailable_metrics``); an empty mapping gives ``""``.

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


def __getattr__(name: str):
    """Registry names, ``DEFAULT_METRICS`` (the default suite, see ``default_suite``), ``__all__``
    and every registered metric's function, resolved on first use and then cached here."""
    if name.startswith("_") and name != "__all__":  # submodules and dunders: the normal lookup
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    _registry = importlib.import_module(f"{__name__}._registry")
    if name in _REGISTRY_NAMES:
        value = getattr(_registry, name)
    elif name == "DEFAULT_METRICS":
        value = _registry.default_suite()
    elif name == "__all__":
        value = ["DEFAULT_METRICS", "describe_unscored", *_REGISTRY_NAMES, *_registry.list_metrics()]
    elif name in _registry.list_metrics():
        value = _registry.get_metric(name).fn
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__getattr__("__all__")))
