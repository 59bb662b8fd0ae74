"""Scene content for the synthetic camera: the colour photographs bundled with scikit-image (no
download needed) and ColorChecker charts from measured reflectances."""

from __future__ import annotations

import numpy as np
from skimage import data as skdata
from skimage.transform import resize

from isp_bench.synth import exactmath
from isp_bench.synth.look import srgb_decode

# scikit-image images that ship inside the wheel (no pooch download).
PHOTOGRAPHS = (
    "astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
    "retina", "colorwheel", "stereo_motorcycle", "logo",
)
COLORCHECKER = "colorchecker"
SOURCES = PHOTOGRAPHS + (COLORCHECKER,)


def photograph_srgb(name: str) -> np.ndarray:
    """A bundled photograph as float64 sRGB-encoded values in [0, 1] (alpha composited on grey)."""
    if name not in PHOTOGRAPHS:
        raise KeyError(f"{name!r} is not a bundled photograph; choose from {', '.join(PHOTOGRAPHS)}")
    image = getattr(skdata, name)()
    if isinstance(image, tuple):  # stereo_motorcycle returns (left, right, disparity)
        image = image[0]
    image = image.astype(np.float64) / 255.0
    if image.shape[-1] == 4:
        alpha = image[..., 3:]
        image = image[..., :3] * alpha + 0.5 * (1 - alpha)
    return image


def frame_photograph(name: str, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Linear sRGB (IEC 61966-2-1 decoding) crop of a photograph filling ``shape``, with random
    scale (bilinear; downscaling is anti-aliased as scikit-image's ``rescale`` does, with a Gaussian
    of σ = (input/output size − 1)/2 pixels, here :func:`exactmath.gaussian_filter`), position and
    horizontal flip."""
    srgb = photograph_srgb(name)
    h, w = shape
    cover = max(h / srgb.shape[0], w / srgb.shape[1])
    scale = cover * rng.uniform(1.0, 1.4) if cover < 1.0 else cover
    size = np.maximum(np.round(np.array(srgb.shape[:2]) * scale), 1).astype(int)
    if scale < 1:
        sigma = np.maximum(0.0, (np.array(srgb.shape[:2]) / size - 1) / 2)
        srgb = exactmath.gaussian_filter(srgb, (*sigma, 0.0), mode="mirror")
    image = resize(srgb, (*size, 3), order=1, anti_aliasing=False)
    top = int(rng.integers(0, image.shape[0] - h + 1))
    left = int(rng.integers(0, image.shape[1] - w + 1))
    image = image[top : top + h, left : left + w]
    if rng.random() < 0.5:
        image = image[:, ::-1]
    return srgb_decode(np.clip(image, 0.0, 1.0))


def colorchecker_layout(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Patch index map (H×W int, -1 = the chart's black surround) of a 6×4 ColorChecker filling
    most of the frame at a random position."""
    h, w = shape
    chart_h = int(h * rng.uniform(0.7, 0.9))
    chart_w = min(int(chart_h * 1.5), int(w * 0.95))
    top = int(rng.integers(0, h - chart_h + 1))
    left = int(rng.integers(0, w - chart_w + 1))
    layout = np.full(shape, -1, dtype=np.int64)
    rows = np.arange(chart_h) * 4 // chart_h
    cols = np.arange(chart_w) * 6 // chart_w
    # a gap of 1/8 of the patch pitch between patches, as on the real chart
    row_in = (np.arange(chart_h) * 4 % chart_h) * 8 // chart_h
    col_in = (np.arange(chart_w) * 6 % chart_w) * 8 // chart_w
    inside = (row_in[:, None] > 0) & (col_in[None, :] > 0)
    patch = rows[:, None] * 6 + cols[None, :]
    layout[top : top + chart_h, left : left + chart_w] = np.where(inside, patch, -1)
    return layout
