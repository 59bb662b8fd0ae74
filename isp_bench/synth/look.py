"""The synthetic "phone ISP": the camera-side rendering the targets are made with.

From noise-free camera RGB it applies white balance and the camera's colour matrix (the linear
restoration target, CameraNet's G_r), then a look that no 3×3 matrix can reproduce: a global tone
curve with a highlight shoulder, a contrast S-curve and luminance- and hue-dependent chroma and hue
changes in Oklab, and mild unsharp-mask sharpening, and finally the sRGB transfer function.
"""

from __future__ import annotations

import warnings

import numpy as np

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from colour.models.oklab import MATRIX_1_XYZ_TO_LMS, MATRIX_2_LMS_TO_LAB

from isp_bench.colorimetry import SRGB_TO_XYZ
from isp_bench.synth import exactmath
from isp_bench.synth.spectral import XYZ_TO_SRGB

# Oklab (B. Ottosson, 2020) as colour-science defines it, inverses computed exactly.
_LMS_TO_XYZ = exactmath.inverse(MATRIX_1_XYZ_TO_LMS)
_LAB_TO_LMS = exactmath.inverse(MATRIX_2_LMS_TO_LAB)
_SIN_HUE_SHIFT, _COS_HUE_SHIFT = (float(v) for v in exactmath.sin_cos(0.6))


def camera_to_srgb_matrix(color_matrix: np.ndarray, d65_camera_white: np.ndarray) -> np.ndarray:
    """3×3 from white-balanced camera RGB (scene white = 1, 1, 1) to linear sRGB (white = 1, 1, 1):
    the neutral is mapped back to the camera's D65 white, then through the D65 colour matrix."""
    matrix = exactmath.matmul(exactmath.matmul(XYZ_TO_SRGB, color_matrix), np.diag(d65_camera_white / d65_camera_white[1]))
    return matrix / exactmath.matmul(matrix, np.ones(3))[:, None]


def render_linear(camera_rgb: np.ndarray, wb: np.ndarray, cam_to_srgb: np.ndarray) -> np.ndarray:
    """Linear sRGB (not clipped) of camera RGB: white balance then the colour matrix."""
    return exactmath.apply_matrix(cam_to_srgb, camera_rgb * np.asarray(wb))


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 sRGB encoding of linear values (colour-science's ``eotf_inverse_sRGB``).

    A separate implementation from :func:`isp_bench.colorimetry.srgb_encode` on purpose: the power
    is :func:`~isp_bench.synth.exactmath.power` (IEEE-exact elementwise arithmetic), not
    ``np.power``, whose last bit depends on the CPU's SIMD path, so the synthetic set's PNG/JPEG
    bytes are the same on every machine. Same constants, same curve."""
    linear = np.asarray(linear, dtype=np.float64)
    return np.where(linear <= 0.0031308, linear * 12.92, 1.055 * exactmath.power(linear, 1 / 2.4) - 0.055)


def srgb_decode(encoded: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 sRGB decoding to linear values (colour-science's ``eotf_sRGB``, threshold
    0.0031308 × 12.92); exact arithmetic for the reason :func:`srgb_encode` gives."""
    encoded = np.asarray(encoded, dtype=np.float64)
    return np.where(encoded <= 0.0031308 * 12.92, encoded / 12.92, exactmath.power((encoded + 0.055) / 1.055, 2.4))


def render_look(linear_srgb: np.ndarray) -> np.ndarray:
    """The phone look: sRGB-encoded float image in [0, 1] from linear sRGB.

    Every step is elementwise IEEE arithmetic or :mod:`~isp_bench.synth.exactmath`, so the result
    is the same bits on every machine (the JPEG's code values depend on it)."""
    rgb = np.clip(linear_srgb, 0.0, None)
    luminance = rgb[..., 0] * SRGB_TO_XYZ[1, 0] + rgb[..., 1] * SRGB_TO_XYZ[1, 1] + rgb[..., 2] * SRGB_TO_XYZ[1, 2]
    shoulder = 2.2  # linear value that maps to display white
    mapped = luminance * (1 + luminance / (shoulder * shoulder)) / (1 + luminance)
    rgb = rgb * (mapped / np.maximum(luminance, 1e-6))[..., None] * 1.18

    lms = exactmath.apply_matrix(MATRIX_1_XYZ_TO_LMS, exactmath.apply_matrix(SRGB_TO_XYZ, rgb))
    lab = exactmath.apply_matrix(MATRIX_2_LMS_TO_LAB, exactmath.power(lms, 1 / 3))
    lightness, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    # contrast S-curve 0.5 + 0.5·tanh(1.35·artanh(2L − 1)), written as 1 / (1 + ((1 − L) / L)^1.35)
    z = np.clip(2 * lightness - 1, -0.999, 0.999)
    lightness = 1 / (1 + exactmath.power((1 - z) / (1 + z), 1.35))
    chroma = np.sqrt(a * a + b * b)
    has_hue = chroma > 0
    safe_chroma = np.where(has_hue, chroma, 1.0)
    cos_hue, sin_hue = np.where(has_hue, a / safe_chroma, 1.0), np.where(has_hue, b / safe_chroma, 0.0)
    chroma = chroma * (1.25 - 0.35 * ((lightness - 0.5) * (lightness - 0.5)) * 4)  # richer midtones, calmer shadows/highlights
    # warm skin/foliage shift: hue += 0.09·sin(hue − 0.6)·exp(−(L − 0.55)² / 0.08)
    sin_offset = sin_hue * _COS_HUE_SHIFT - cos_hue * _SIN_HUE_SHIFT
    shift_sin, shift_cos = exactmath.sin_cos(
        0.09 * sin_offset * exactmath.exp(-((lightness - 0.55) * (lightness - 0.55)) / 0.08))
    lab = np.stack([lightness, chroma * (cos_hue * shift_cos - sin_hue * shift_sin),
                    chroma * (sin_hue * shift_cos + cos_hue * shift_sin)], axis=-1)
    lms = exactmath.apply_matrix(_LAB_TO_LMS, lab)
    rgb = np.clip(exactmath.apply_matrix(XYZ_TO_SRGB, exactmath.apply_matrix(_LMS_TO_XYZ, lms * lms * lms)), 0.0, 1.0)

    encoded = srgb_encode(rgb)
    blurred = exactmath.gaussian_filter(encoded, (1.0, 1.0, 0))
    return np.clip(encoded + 0.35 * (encoded - blurred), 0.0, 1.0)
