"""Pixel-fidelity metrics: PSNR, SSIM and MS-SSIM, with the settings of the official values pinned.

The TID2013 calibration values most papers quote (pyiqa's ``results_official.csv``) come from
MATLAB code: PSNR over the three RGB channels, and Wang's ``ssim_index.m`` / ``msssim.m`` run on
``rgb2gray`` of the images. ``ssim`` and ``ms_ssim`` here reproduce that convention; ``ssim_rgb``
and ``ms_ssim_rgb`` are the per-channel means many learned-ISP papers report instead.
"""

from __future__ import annotations

import math

import numpy as np

from ._registry import ImageTooSmallError, MetricSpec, register_metric
from .pair import MS_WEIGHTS, PairWork, gauss_window

#: Smallest image side pytorch-msssim accepts with an 11-px window and 5 scales: (11 - 1) * 2**4.
MS_SSIM_MIN_SIDE = 161

_SSIM_SETTINGS = {
    "window": "gaussian",
    "win_size": 11,
    "win_sigma": 1.5,
    "K": (0.01, 0.03),
    "covariance": "population",
    "data_range": 1.0,
    "border": "valid (no padding, as MATLAB filter2 'valid')",
    "downsample": "none (ssim_index.m, not the 2009 ssim.m auto-downsampling)",
    "compute_dtype": "float32",
}


def psnr(pred, target, *, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio over all pixels and all three RGB channels, in dB.

    Parameters
    ----------
    pred, target : array_like
        H×W×3 sRGB images (numpy or torch): floats in [0, 1], or uint8/uint16.
    data_range : float, optional
        The range of the input values as given, ``[0, data_range]`` (scikit-image's meaning: 255
        for 8-bit data); the values are divided by it. By default the dtype says it (uint8: 255,
        uint16: 65535, floats: 1), as in scikit-image.

    Returns
    -------
    float
        ``10 log10(data_range² / MSE)`` (MSE of the values as given); ``inf`` for identical images.

    References
    ----------
    .. [1] scikit-image ``skimage.metrics.peak_signal_noise_ratio`` (the convention of the official
       TID2013 calibration values: RGB, all channels in one MSE).

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((4, 4, 3)); b = np.full((4, 4, 3), 0.1)
    >>> round(psnr(a, b), 6)
    20.0
    >>> u8 = np.zeros((4, 4, 3), np.uint8); round(psnr(u8, u8 + 10, data_range=255), 4)
    28.1308
    """
    return _psnr(PairWork(pred, target, data_range))


def _psnr(work: PairWork) -> float:
    """PSNR on the validated [0, 1] images (peak 1)."""
    mse = work.sq_err() / work.pred.size
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(1.0 / mse)


def _to_nchw(channels: np.ndarray):
    """H×W×C float64 -> 1×C×H×W float32 tensor."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(channels.transpose(2, 0, 1), dtype=np.float32))[None]


def _ssim_per_channel(x, y, data_range: float = 1.0) -> np.ndarray:
    """Reference path (torch conv2d), kept for tests; the metrics use :func:`.pair.ssim_means`.

    Mean SSIM per channel of 1×C×H×W tensors (Wang et al., Gaussian 11/1.5, valid region).

    Statistics are computed on data centred at 0.5 to limit float32 cancellation in
    ``E[x²] − μ²``; SSIM's variance/covariance terms do not depend on that offset.
    """
    import torch

    c = x.shape[1]
    h, w = x.shape[-2:]
    if min(h, w) < 11:
        raise ImageTooSmallError(f"SSIM needs images of at least 11×11 pixels, got {h}×{w}")
    g = torch.from_numpy(gauss_window().astype(np.float32))
    kh = g.view(1, 1, 1, -1).repeat(5 * c, 1, 1, 1)
    kv = g.view(1, 1, -1, 1).repeat(5 * c, 1, 1, 1)

    def filt(z: torch.Tensor) -> torch.Tensor:
        z = torch.nn.functional.conv2d(z, kh, groups=z.shape[1])
        return torch.nn.functional.conv2d(z, kv, groups=z.shape[1])

    off = 0.5 * data_range
    xc, yc = x - off, y - off
    stacked = torch.cat([xc, yc, xc * xc, yc * yc, xc * yc], dim=1)
    with torch.no_grad():
        f = filt(stacked)
    mx, my, exx, eyy, exy = (f[:, i * c : (i + 1) * c].double() for i in range(5))
    sxx = exx - mx * mx
    syy = eyy - my * my
    sxy = exy - mx * my
    mx = mx + off
    my = my + off
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    ssim_map = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return ssim_map.mean(dim=(0, 2, 3)).numpy()


def ssim(pred, target, *, data_range: float | None = None) -> float:
    """SSIM of Wang et al. on the MATLAB ``rgb2gray`` grey of the images.

    The grey is ``rgb2gray`` of the 8-bit image: the weighted sum of R, G, B with MATLAB's weights,
    rounded to 8 bits (on [0, 1] inputs: ``round(255·(w·rgb)) / 255``). Without that rounding the
    official TID2013 values are not reproduced (I03: 0.7006 instead of 0.6993).

    11×11 Gaussian window with σ = 1.5, K = (0.01, 0.03), population covariance, data range 1,
    mean over the 'valid' region (no padding), no automatic downsampling. This is the convention of
    the official TID2013 values (Wang's ``ssim_index.m`` on ``rgb2gray``) and equals
    ``skimage.metrics.structural_similarity(gray1, gray2, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1)``.

    Parameters
    ----------
    pred, target : array_like
        H×W×3 sRGB images (floats in [0, 1], or uint8/uint16), at least 11×11.
    data_range : float, optional
        The range of the input values as given, ``[0, data_range]`` (scikit-image's meaning); the
        values are divided by it. By default the dtype says it (uint8: 255, uint16: 65535, floats: 1).

    References
    ----------
    .. [1] Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality assessment: from
       error visibility to structural similarity", IEEE TIP 13(4), 2004.
    .. [2] Wang's reference MATLAB code ``ssim_index.m``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).random((32, 32, 3))
    >>> ssim(x, x)
    1.0
    """
    return _ssim(PairWork(pred, target, data_range))


def _ssim(work: PairWork) -> float:
    return float(np.round(work.ssim_level1("grey")[0][0], 12))


def ssim_rgb(pred, target, *, data_range: float | None = None) -> float:
    """Mean over R, G, B of per-channel SSIM, with the window and constants of :func:`ssim`
    (``data_range`` as there).

    References
    ----------
    .. [1] Z. Wang et al., IEEE TIP 13(4), 2004.
    """
    return _ssim_rgb(PairWork(pred, target, data_range))


def _ssim_rgb(work: PairWork) -> float:
    return float(np.round(np.mean([s for s, _ in work.ssim_level1("rgb")]), 12))


def ms_ssim(pred, target, *, data_range: float | None = None) -> float:
    """Multi-scale SSIM (pytorch-msssim's algorithm) on the MATLAB ``rgb2gray`` grey (8-bit, as
    :func:`ssim`; ``data_range`` as there).

    Five scales with weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), 11×11 Gaussian window,
    σ = 1.5, data range 1, 2×2 average-pool downsampling between scales. Images whose shorter side
    is below 161 px raise :class:`ImageTooSmallError` (no silent fallback).

    The computation is pytorch-msssim's (same window, valid filtering, relu, zero-padded 2×2
    pooling via ``torch.nn.functional.avg_pool2d``), run by the strip-wise kernels of
    ``isp_bench.metrics.pair`` so the full-resolution statistics are shared with :func:`ssim`; it
    equals ``pytorch_msssim.ms_ssim`` in float64 to ~1e-6 (tested) — closer than the package's own
    float32 run.

    pytorch-msssim differs from Wang's MATLAB ``msssim.m`` (which low-pass filters with a 9/7 kernel
    before decimation); on the TID2013 calibration pairs the difference is at most about 0.005.

    References
    ----------
    .. [1] Z. Wang, E. P. Simoncelli, A. C. Bovik, "Multiscale structural similarity for image
       quality assessment", Asilomar 2003.
    .. [2] pytorch-msssim (VainF), ``pytorch_msssim.ms_ssim``.
    """
    return _ms_ssim(PairWork(pred, target, data_range))


def _ms_ssim_planes(work: PairWork, which: str) -> float:
    h, w = work.pred.shape[:2]
    if min(h, w) < MS_SSIM_MIN_SIDE:
        raise ImageTooSmallError(
            f"MS-SSIM (5 scales, 11-px window) needs both sides ≥ {MS_SSIM_MIN_SIDE} px, got "
            f"{h}×{w}; score such images with 'ssim' instead"
        )
    return work.ms_ssim(which)


def _ms_ssim(work: PairWork) -> float:
    return _ms_ssim_planes(work, "grey")


def ms_ssim_rgb(pred, target, *, data_range: float | None = None) -> float:
    """Mean over R, G, B of per-channel MS-SSIM with the settings of :func:`ms_ssim`."""
    return _ms_ssim_rgb(PairWork(pred, target, data_range))


def _ms_ssim_rgb(work: PairWork) -> float:
    return _ms_ssim_planes(work, "rgb")


PSNR = register_metric(
    MetricSpec(
        name="psnr",
        fn=psnr,
        on_pair=_psnr,
        default_suite=True,
        reference="PSNR; reproduces skimage.metrics.peak_signal_noise_ratio on RGB (official TID2013 values)",
        settings={"color_space": "sRGB", "channels": "RGB, one MSE over all", "data_range": 1.0},
        higher_is_better=True,
        units="dB",
    )
)
SSIM = register_metric(
    MetricSpec(
        name="ssim",
        fn=ssim,
        on_pair=_ssim,
        default_suite=True,
        reference="Wang et al. 2004 (IEEE TIP); reproduces Wang's MATLAB ssim_index.m on rgb2gray",
        settings={"channels": "grey: MATLAB rgb2gray weights, rounded to 8 bits as rgb2gray(uint8)", **_SSIM_SETTINGS},
    )
)
SSIM_RGB = register_metric(
    MetricSpec(
        name="ssim_rgb",
        fn=ssim_rgb,
        on_pair=_ssim_rgb,
        default_suite=True,
        reference="Wang et al. 2004 (IEEE TIP); per-channel SSIM, mean over R, G, B",
        settings={"channels": "mean over R, G, B", **_SSIM_SETTINGS},
    )
)
_MS_SETTINGS = {
    "implementation": "pytorch-msssim 1.0's algorithm (relu, zero-padded 2×2 average pooling), "
                      "reimplemented; equal to pytorch_msssim.ms_ssim within 2e-6",
    "scales": 5,
    "weights": MS_WEIGHTS,
    "win_size": 11,
    "win_sigma": 1.5,
    "K": (0.01, 0.03),
    "data_range": 1.0,
    "min_side": MS_SSIM_MIN_SIDE,
    "compute_dtype": "float32",
}
MS_SSIM = register_metric(
    MetricSpec(
        name="ms_ssim",
        fn=ms_ssim,
        on_pair=_ms_ssim,
        default_suite=True,
        reference="Wang, Simoncelli & Bovik 2003 (Asilomar); pytorch-msssim's algorithm",
        settings={"channels": "grey: MATLAB rgb2gray weights, rounded to 8 bits as rgb2gray(uint8)", **_MS_SETTINGS},
    )
)
MS_SSIM_RGB = register_metric(
    MetricSpec(
        name="ms_ssim_rgb",
        fn=ms_ssim_rgb,
        on_pair=_ms_ssim_rgb,
        reference="Wang, Simoncelli & Bovik 2003 (Asilomar); pytorch-msssim, mean over R, G, B",
        settings={"channels": "mean over R, G, B", **_MS_SETTINGS},
    )
)
