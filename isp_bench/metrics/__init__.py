"""Image-quality metrics pinned to their reference implementations.

Each metric is a :class:`MetricSpec` in a registry::

    >>> from isp_bench.metrics import get_metric, list_metrics
    >>> spec = get_metric("ssim")
    >>> spec.higher_is_better, spec.full_reference
    (True, True)

Full-reference functions take ``(pred, target)`` as H×W×3 sRGB arrays in [0, 1] (numpy or torch);
no-reference ones take one image. ``spec.to_dict()`` is what results record beside every score.
"""

from isp_bench._lazy import lazy_package

# name -> submodule, imported on first use (numpy/torch load only then: `isp-bench --help` stays fast);
# get_metric/list_metrics import every metric module, whose definitions register the metrics.
_EXPORTS = {
    **dict.fromkeys(("MetricError", "MetricInputError", "MetricSpec", "MetricWeightsError", "get_metric",
                     "list_metrics", "register_metric"), "._registry"),
    **dict.fromkeys(("psnr", "ssim", "ssim_rgb", "ms_ssim", "ms_ssim_rgb"), ".fidelity"),
    **dict.fromkeys(("delta_e76", "delta_e76_rms"), ".color"),
}
lazy_package(__name__, _EXPORTS)

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
