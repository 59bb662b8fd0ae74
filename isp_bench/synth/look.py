"""The synthetic "phone ISP": the camera-side rendering the targets are made with.

From noise-free camera RGB it applies white balance and the camera's colour matrix (the linear
restoration target, CameraNet's G_r), then a look that no 3×3 matrix can reproduce: a global tone
curve with a highlight shoulder, a contrast S-curve and luminance- and hue-dependent chroma and hue
changes in Oklab, and mild unsharp-mask sharpening, and finally the sRGB transfer function.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import ndimage

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import colour

from isp_bench.synth.spectral import SRGB_TO_XYZ, XYZ_TO_SRGB


def camera_to_srgb_matrix(color_matrix: np.ndarray, d65_camera_white: np.ndarray) -> np.ndarray:
    """3×3 from white-balanced camera RGB (scene white = 1, 1, 1) to linear sRGB (white = 1, 1, 1):
    the neutral is mapped back to the camera's D65 white, then through the D65 colour matrix."""
    matrix = XYZ_TO_SRGB @ np.asarray(color_matrix) @ np.diag(d65_camera_white / d65_camera_white[1])
    return matrix / matrix.sum(axis=1, keepdims=True)


def render_linear(camera_rgb: np.ndarray, wb: np.ndarray, cam_to_srgb: np.ndarray) -> np.ndarray:
    """Linear sRGB (not clipped) of camera RGB: white balance then the colour matrix."""
    return (camera_rgb * np.asarray(wb)) @ cam_to_srgb.T


def render_look(linear_srgb: np.ndarray) -> np.ndarray:
    """The phone look: sRGB-encoded float image in [0, 1] from linear sRGB."""
    rgb = np.clip(linear_srgb, 0.0, None)
    luminance = rgb @ SRGB_TO_XYZ[1]
    shoulder = 2.2  # linear value that maps to display white
    mapped = luminance * (1 + luminance / shoulder**2) / (1 + luminance)
    rgb = rgb * (mapped / np.maximum(luminance, 1e-6))[..., None] * 1.18

    lab = colour.XYZ_to_Oklab(rgb @ SRGB_TO_XYZ.T)
    lightness, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    lightness = 0.5 + 0.5 * np.tanh(1.35 * np.arctanh(np.clip(2 * lightness - 1, -0.999, 0.999)))
    chroma, hue = np.hypot(a, b), np.arctan2(b, a)
    chroma *= 1.25 - 0.35 * (lightness - 0.5) ** 2 * 4  # richer midtones, calmer shadows/highlights
    hue += 0.09 * np.sin(hue - 0.6) * np.exp(-((lightness - 0.55) ** 2) / 0.08)  # warm skin/foliage shift
    lab = np.stack([lightness, chroma * np.cos(hue), chroma * np.sin(hue)], axis=-1)
    rgb = np.clip(colour.Oklab_to_XYZ(lab) @ XYZ_TO_SRGB.T, 0.0, 1.0)

    encoded = colour.cctf_encoding(rgb, function="sRGB")
    blurred = ndimage.gaussian_filter(encoded, sigma=(1.0, 1.0, 0))
    return np.clip(encoded + 0.35 * (encoded - blurred), 0.0, 1.0)
