"""Image-quality metrics pinned to their reference implementations.

Each metric is a :class:`MetricSpec` in a registry::

    >>> from isp_bench.metrics import get_metric, list_metrics
    >>> spec = get_metric("ssim")
    >>> spec.higher_is_better, spec.full_reference
    (True, True)

Full-reference functions take ``(pred, target)`` as H×W×3 sRGB arrays in [0, 1] (numpy or torch);
no-reference ones take one image. ``spec.to_dict()`` is what results record beside every score.
"""

from ._registry import (
    MetricError,
    MetricInputError,
    MetricSpec,
    MetricWeightsError,
    get_metric,
    list_metrics,
    register_metric,
)
from . import fidelity, color, scielab, lpips, brisque, deepiqa  # noqa: E402,F401  (registration)
from .fidelity import ms_ssim, ms_ssim_rgb, psnr, ssim, ssim_rgb  # noqa: E402
from .color import delta_e76, delta_e76_rms  # noqa: E402

__all__ = [
    "MetricError",
    "MetricInputError",
    "MetricSpec",
    "MetricWeightsError",
    "get_metric",
    "list_metrics",
    "register_metric",
    "psnr",
    "ssim",
    "ssim_rgb",
    "ms_ssim",
    "ms_ssim_rgb",
    "delta_e76",
    "delta_e76_rms",
]
