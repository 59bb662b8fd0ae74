"""Scene content for the synthetic camera: the colour photographs bundled with scikit-image (no
download needed), ColorChecker charts from measured reflectances and colour dead-leaves charts (the
whole sRGB gamut, saturated hues included, in a texture with natural images' scale statistics)."""

from __future__ import annotations

import numpy as np
from skimage import data as skdata
from skimage.color import hsv2rgb
from skimage.transform import resize

from isp_bench.synth import exactmath
from isp_bench.synth.look import srgb_decode

# scikit-image images that ship inside the wheel (no pooch download).
PHOTOGRAPHS = (
    "astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
    "retina", "colorwheel", "stereo_motorcycle", "logo",
)
COLORCHECKER = "colorchecker"
DEAD_LEAVES = "dead_leaves"
SOURCES = PHOTOGRAPHS + (COLORCHECKER, DEAD_LEAVES)


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


def dead_leaves(shape: tuple[int, int], rng: np.random.Generator, *, max_discs: int = 200_000) -> np.ndarray:
    """Linear sRGB (H×W×3) colour dead-leaves chart: opaque discs dropped until they cover the frame, radii
    of density ∝ r⁻³ between 1/200 and 1/4 of the frame's short side (scale invariant, as natural images
    are; F. Cao, F. Guichard, H. Hornung, "Dead leaves model for measuring texture quality on a digital
    camera", Proc. SPIE 7537, 2010), each of one colour with uniform hue, saturation √u (most colours
    well saturated) and value in [0.2, 1]. Drawn front to back, so a disc fills only what the discs
    before it left uncovered. Every value is IEEE-exact elementwise arithmetic (the same bits on every
    machine)."""
    h, w = shape
    r_min, r_max = max(0.5, min(h, w) / 200), min(h, w) / 4
    # inverse CDF of p(r) ∝ r⁻³ on [r_min, r_max]
    inv_min_sq, span = 1 / (r_min * r_min), 1 / (r_min * r_min) - 1 / (r_max * r_max)
    image = np.zeros((h, w, 3))
    uncovered = np.ones((h, w), dtype=bool)
    left, drawn, chunk = h * w, 0, 4096
    while left and drawn < max_discs:
        radius = 1 / np.sqrt(inv_min_sq - rng.random(chunk) * span)
        centre_y, centre_x = rng.random(chunk) * h, rng.random(chunk) * w
        hsv = np.stack([rng.random(chunk), np.sqrt(rng.random(chunk)), 0.2 + 0.8 * rng.random(chunk)], axis=-1)
        colours = srgb_decode(hsv2rgb(hsv[None])[0])
        for r, cy, cx, colour in zip(radius, centre_y, centre_x, colours):
            top, bottom = max(0, int(np.floor(cy - r))), min(h, int(np.ceil(cy + r)) + 1)
            first, last = max(0, int(np.floor(cx - r))), min(w, int(np.ceil(cx + r)) + 1)
            ys, xs = np.arange(top, bottom) - cy, np.arange(first, last) - cx
            box = uncovered[top:bottom, first:last]
            inside = (ys[:, None] * ys[:, None] + xs[None, :] * xs[None, :] <= r * r) & box
            image[top:bottom, first:last][inside] = colour
            box[inside] = False
            left -= int(inside.sum())
            drawn += 1
            if not left:
                break
    image[uncovered] = srgb_decode(np.full(3, 0.5))  # only if max_discs ran out: mid grey
    return image
