"""Photometric pair checks: clipped-pixel fractions, sharpness (variance of the Laplacian) and the
exposure ratio between the frames of a bracket (from EXIF and measured from the raw data).

References:
    J. L. Pech-Pacheco, G. Cristóbal, J. Chamorro-Martínez, J. Fernández-Valdivia, "Diatom autofocusing
    in brightfield microscopy: a comparative study", ICPR 2000 (variance of the Laplacian as focus measure).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from isp_bench.qa.registration import luminance


def clipped_fraction_raw(mosaic: np.ndarray, white_level: float, black_level, *, margin: float = 0.002) -> float:
    """Fraction of raw photosites at or within ``margin`` (of the black→white range) of the white level."""
    black = float(np.min(black_level)) if black_level is not None else 0.0
    limit = white_level - margin * (white_level - black)
    return float((mosaic >= limit).mean())


def clipped_fraction_image(image: np.ndarray) -> float:
    """Fraction of pixels with any channel at the top code value (255 for uint8, 1.0 for floats)."""
    top = 255 if image.dtype == np.uint8 else np.iinfo(image.dtype).max if image.dtype.kind == "u" else 1.0
    return float((image[..., :3] >= top).any(axis=-1).mean())


def sharpness(image: np.ndarray, *, mask: np.ndarray | None = None, sigma: float = 1.5) -> float:
    """Scale-free variance of the Laplacian: var(∇²g) / var(g) of the grey image ``g`` (square-root
    compressed, then smoothed by a Gaussian of ``sigma`` px so that sensor noise does not count as
    detail), over ``mask`` where given."""
    g = np.sqrt(np.clip(luminance(image), 0, None) + 1e-4)
    g = cv2.GaussianBlur(g, (0, 0), sigma)
    lap = cv2.Laplacian(g, cv2.CV_32F, ksize=3)
    if mask is not None:
        m = cv2.erode(mask.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
        g, lap = g[m], lap[m]
    v = float(np.var(g))
    return float(np.var(lap) / v) if v > 0 else 0.0


def exposure_value(exposure_s: float | None, iso: float | None, fnumber: float | None) -> float | None:
    """Relative exposure of a frame: exposure time × ISO / N² (None when the time is unknown)."""
    if not exposure_s:
        return None
    return exposure_s * (iso or 1.0) / ((fnumber or 1.0) ** 2)


def exif_ratio(brighter: dict, darker: dict) -> float | None:
    """How many times more exposure ``brighter`` got than ``darker``, from their EXIF."""
    a = exposure_value(brighter.get("exposure_s"), brighter.get("iso"), brighter.get("fnumber"))
    b = exposure_value(darker.get("exposure_s"), darker.get("iso"), darker.get("fnumber"))
    return a / b if a and b else None


def measured_ratio(bright_norm: np.ndarray, dark_norm: np.ndarray, *, low: float = 0.02, high: float = 0.85
                   ) -> float | None:
    """Exposure ratio measured from two normalised raw mosaics (black 0, white 1) of one scene: the
    median of bright/dark over photosites that are well exposed and unclipped in both, after a 4×4
    box average (robust to noise and sub-pixel misalignment)."""
    def box(x):
        h, w = x.shape[0] // 4 * 4, x.shape[1] // 4 * 4
        return x[:h, :w].reshape(h // 4, 4, w // 4, 4).mean(axis=(1, 3))

    a, b = box(bright_norm.astype(np.float64)), box(dark_norm.astype(np.float64))
    ok = (a > low) & (a < high) & (b > low / 8)
    if ok.sum() < 50:
        return None
    return float(np.median(a[ok] / b[ok]))


def stops(ratio: float | None, reference: float | None) -> float | None:
    if not ratio or not reference:
        return None
    return math.log2(ratio / reference)
