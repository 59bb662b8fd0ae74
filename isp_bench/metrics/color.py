"""CIELAB colour difference (CIE 1976) through one pinned sRGB → XYZ → Lab pipeline.

The pipeline is colour-science's: IEC 61966-2-1 decoding (``colour.models.eotf_sRGB``), the
standard's 4-decimal sRGB RGB→XYZ matrix (``colour.RGB_COLOURSPACES["sRGB"]``), CIELAB with the
CIE 1931 2° D65 white (``colour.XYZ_to_Lab``) and ``colour.delta_E(..., method="CIE 1976")``. The
constants and the curve are :mod:`isp_bench.colorimetry`'s; the arithmetic is vectorised here
(12 MP in well under a second per image) and tested against those colour-science calls.
"""

from __future__ import annotations

import math

import numpy as np

from isp_bench.colorimetry import D65_WHITE_XYZ, SRGB_TO_XYZ, srgb_decode

from ._registry import MetricSpec, as_pair, register_metric
from .pair import PairWork


def srgb_to_xyz(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] → CIE XYZ (Y of white = 1), as ``colour.sRGB_to_XYZ``."""
    return srgb_decode(rgb) @ SRGB_TO_XYZ.T


def xyz_to_lab(xyz: np.ndarray, white: np.ndarray | None = None) -> np.ndarray:
    """CIE XYZ → CIELAB (CIE 15:2004 constants ε = 216/24389, κ = 24389/27), as ``colour.XYZ_to_Lab``."""
    if white is None:
        white = D65_WHITE_XYZ
    t = np.asarray(xyz, dtype=np.float64) / np.asarray(white, dtype=np.float64)
    f = np.where(t > (24 / 116) ** 3, np.cbrt(t), (841 / 108) * t + 16 / 116)
    lab = np.empty_like(f)
    lab[..., 0] = 116 * f[..., 1] - 16
    lab[..., 1] = 500 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200 * (f[..., 1] - f[..., 2])
    return lab


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] → CIELAB (D65), L* in [0, 100]."""
    return xyz_to_lab(srgb_to_xyz(rgb))


def delta_e76_map(pred, target) -> np.ndarray:
    """Per-pixel CIE 1976 ΔE*ab between two sRGB images (H×W)."""
    p, t = as_pair(pred, target)
    d = srgb_to_lab(p) - srgb_to_lab(t)
    return np.sqrt(np.einsum("...c,...c->...", d, d))


def delta_e76(pred, target) -> float:
    """Mean per-pixel CIE 1976 colour difference ΔE*ab between two sRGB images.

    Parameters
    ----------
    pred, target : array_like
        H×W×3 sRGB images in [0, 1].

    Returns
    -------
    float
        Mean over pixels of ``‖Lab(pred) − Lab(target)‖₂`` (L* in [0, 100], D65 white).

    References
    ----------
    .. [1] CIE 15:2004 Colorimetry, 3rd ed.; IEC 61966-2-1:1999 (sRGB).
    .. [2] colour-science ``colour.sRGB_to_XYZ``, ``colour.XYZ_to_Lab``, ``colour.delta_E`` (CIE 1976).

    Examples
    --------
    >>> import numpy as np
    >>> black = np.zeros((2, 2, 3)); white = np.ones((2, 2, 3))
    >>> round(delta_e76(black, white), 4)
    100.0
    """
    return _delta_e76(PairWork(pred, target))


def _delta_e76(work: PairWork) -> float:
    return work.colour(de76=True)["de76"][0] / work.pixels


def _want_delta_e76(work: PairWork) -> None:
    work.want_colour(de76=True)


def delta_e76_rms(pred, target) -> float:
    """Root-mean-square of the per-pixel CIE 1976 ΔE*ab map (the form CRISPnet reports).

    References
    ----------
    .. [1] CIE 15:2004; as :func:`delta_e76`.
    """
    return _delta_e76_rms(PairWork(pred, target))


def _delta_e76_rms(work: PairWork) -> float:
    return math.sqrt(work.colour(de76=True)["de76"][1] / work.pixels)


_SETTINGS = {
    "decoding": "IEC 61966-2-1 (colour.models.eotf_sRGB)",
    "rgb_to_xyz": "colour.RGB_COLOURSPACES['sRGB'].matrix_RGB_to_XYZ",
    "white": "CIE 1931 2° D65 (0.3127, 0.3290)",
    "lab": "CIE 1976 (colour.XYZ_to_Lab)",
}
DELTA_E76 = register_metric(
    MetricSpec(
        name="delta_e76",
        fn=delta_e76,
        on_pair=_delta_e76,
        plan=_want_delta_e76,
        default_suite=True,
        reference="CIE 1976 ΔE*ab, mean over pixels; colour-science 0.4 pipeline",
        settings={**_SETTINGS, "reduction": "mean"},
        higher_is_better=False,
        units="ΔE*ab",
    )
)
DELTA_E76_RMS = register_metric(
    MetricSpec(
        name="delta_e76_rms",
        fn=delta_e76_rms,
        on_pair=_delta_e76_rms,
        plan=_want_delta_e76,
        default_suite=True,
        reference="CIE 1976 ΔE*ab, RMS over pixels (as CRISPnet reports); colour-science pipeline",
        settings={**_SETTINGS, "reduction": "rms"},
        higher_is_better=False,
        units="ΔE*ab",
    )
)
