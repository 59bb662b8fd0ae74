"""Colour filter array handling: normalisation, RGGB packing and bilinear demosaicing.

Conventions (DESIGN §3): a packed raw is float32 with 4 channels in the order R, Gr, Gb, B at half
resolution, after the mosaic's 2×2 phase has been shifted to RGGB by cropping one leading row and/or
column. The crop is returned as a :class:`CfaCrop` so that a full-resolution target can be cropped
identically.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import ndimage

from isp_bench.errors import IspBenchError

BAYER_PATTERNS = ("RGGB", "GRBG", "GBRG", "BGGR")
PACKED_CHANNELS = ("R", "Gr", "Gb", "B")

# Offset (rows, columns) of the red pixel inside the 2×2 tile for each Bayer pattern.
_RED_OFFSET = {"RGGB": (0, 0), "GRBG": (0, 1), "GBRG": (1, 0), "BGGR": (1, 1)}


class CfaError(IspBenchError, ValueError):
    """A CFA pattern string or mosaic shape that cannot be handled."""


def check_bayer(cfa: str) -> str:
    """Return ``cfa`` upper-cased if it is one of the four 2×2 Bayer patterns, else raise CfaError."""
    pattern = str(cfa).upper()
    if pattern not in _RED_OFFSET:
        raise CfaError(
            f"CFA pattern {cfa!r} is not a 2×2 Bayer pattern; expected one of {', '.join(BAYER_PATTERNS)} "
            "(X-Trans and LinearRaw data cannot be packed to RGGB)"
        )
    return pattern


def cfa_channel_map(cfa: str) -> np.ndarray:
    """2×2 array of colour indices (0 = R, 1 = G, 2 = B) for a Bayer pattern string."""
    pattern = check_bayer(cfa)
    return np.array([["RGB".index(c) for c in pattern[:2]], ["RGB".index(c) for c in pattern[2:]]])


@dataclass(frozen=True)
class CfaCrop:
    """The region of the original mosaic (rows ``top:top+height``, columns ``left:left+width``)
    that a packed raw covers. Apply it to a full-resolution target with :meth:`apply`."""

    top: int
    left: int
    height: int
    width: int

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Crop the first two axes of ``image`` (H×W or H×W×C) to this region."""
        return image[self.top : self.top + self.height, self.left : self.left + self.width]


def rggb_crop(shape: Sequence[int], cfa: str) -> CfaCrop:
    """The crop that shifts a mosaic of ``shape`` (H, W) with pattern ``cfa`` to RGGB phase and
    even size."""
    dy, dx = _RED_OFFSET[check_bayer(cfa)]
    height, width = int(shape[0]) - dy, int(shape[1]) - dx
    height, width = height - height % 2, width - width % 2
    if height < 2 or width < 2:
        raise CfaError(f"mosaic of shape {tuple(shape)} is too small to pack (need at least 2×2 after phase shift)")
    return CfaCrop(dy, dx, height, width)


def shift_cfa(cfa: str, dy: int, dx: int) -> str:
    """The pattern seen after cropping ``dy`` rows and ``dx`` columns off the top-left."""
    channels = cfa_channel_map(cfa)
    shifted = np.roll(channels, shift=(-dy, -dx), axis=(0, 1))
    return "".join("RGB"[c] for c in shifted.ravel())


def black_level_map(black_level: Sequence[float] | float, cfa: str | None = None) -> np.ndarray:
    """2×2 black levels, one per CFA position in the mosaic's own phase (row-major)."""
    levels = np.asarray(black_level, dtype=np.float64).reshape(-1)
    if levels.size == 1:
        levels = np.repeat(levels, 4)
    if levels.size != 4:
        raise CfaError(f"black level {black_level!r} must be one value or four (one per 2×2 CFA position)")
    return levels.reshape(2, 2)


def normalize(
    mosaic: np.ndarray,
    black_level: Sequence[float] | float,
    white_level: float,
    *,
    clip: bool = False,
) -> np.ndarray:
    """Return ``(mosaic - black) / (white - black)`` as float32.

    ``black_level`` is one value or four, one per 2×2 CFA position of ``mosaic`` in its own phase
    (row-major: top-left, top-right, bottom-left, bottom-right). Values are not clipped unless
    ``clip`` is true: noise below the black level is real signal for denoising models.

    >>> normalize(np.array([[64, 1024], [64, 544]], np.uint16), 64, 1024).tolist()
    [[0.0, 1.0], [0.0, 0.5]]
    """
    mosaic = np.asarray(mosaic)
    if mosaic.ndim != 2:
        raise CfaError(f"mosaic must be 2-D, got shape {mosaic.shape}")
    black = black_level_map(black_level)
    h, w = mosaic.shape
    black_full = np.tile(black, ((h + 1) // 2, (w + 1) // 2))[:h, :w]
    scale = float(white_level) - black_full
    if np.any(scale <= 0):
        raise CfaError(f"white level {white_level} must exceed every black level {black.ravel().tolist()}")
    out = ((mosaic.astype(np.float32) - black_full.astype(np.float32)) / scale.astype(np.float32)).astype(np.float32)
    if clip:
        np.clip(out, 0.0, 1.0, out=out)
    return out


def pack_rggb(mosaic: np.ndarray, cfa: str) -> tuple[np.ndarray, CfaCrop]:
    """Pack a 2-D Bayer mosaic to 4 × H/2 × W/2 in the order R, Gr, Gb, B.

    A mosaic whose pattern is not RGGB is first cropped by one row and/or column so that its
    top-left pixel is red; an odd trailing row/column is dropped. The crop is returned so the
    target can be cropped the same way.

    >>> m = np.arange(16).reshape(4, 4)
    >>> packed, crop = pack_rggb(m, "GRBG")
    >>> packed.shape, crop
    ((4, 2, 1), CfaCrop(top=0, left=1, height=4, width=2))
    """
    mosaic = np.asarray(mosaic)
    if mosaic.ndim != 2:
        raise CfaError(f"mosaic must be 2-D, got shape {mosaic.shape}")
    crop = rggb_crop(mosaic.shape, cfa)
    m = crop.apply(mosaic)
    packed = np.stack([m[0::2, 0::2], m[0::2, 1::2], m[1::2, 0::2], m[1::2, 1::2]])
    return packed, crop


def unpack_rggb(packed: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pack_rggb`: (..., 4, h, w) → (..., 2h, 2w) RGGB mosaic."""
    packed = np.asarray(packed)
    if packed.ndim < 3 or packed.shape[-3] != 4:
        raise CfaError(f"packed raw must have shape (..., 4, h, w), got {packed.shape}")
    *lead, _, h, w = packed.shape
    mosaic = np.empty((*lead, 2 * h, 2 * w), dtype=packed.dtype)
    mosaic[..., 0::2, 0::2] = packed[..., 0, :, :]
    mosaic[..., 0::2, 1::2] = packed[..., 1, :, :]
    mosaic[..., 1::2, 0::2] = packed[..., 2, :, :]
    mosaic[..., 1::2, 1::2] = packed[..., 3, :, :]
    return mosaic


_KERNEL_RB = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32)
_KERNEL_G = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]], np.float32)
BILINEAR_KERNELS = np.stack([_KERNEL_RB, _KERNEL_G, _KERNEL_RB])
"""The R, G and B kernels of :func:`demosaic_bilinear` (unnormalised: it divides by the weights present)."""


def cfa_masks(shape: Sequence[int], cfa: str) -> np.ndarray:
    """Boolean H×W×3 masks telling which colour each mosaic pixel samples."""
    channels = cfa_channel_map(cfa)
    h, w = int(shape[0]), int(shape[1])
    index = np.tile(channels, ((h + 1) // 2, (w + 1) // 2))[:h, :w]
    return np.stack([index == c for c in range(3)], axis=-1)


def demosaic_bilinear(mosaic: np.ndarray, cfa: str) -> np.ndarray:
    """Bilinear demosaicing of a (normalised) Bayer mosaic to H×W×3 float32 linear camera RGB.

    Each missing sample is the mean of its nearest same-colour neighbours (the classic kernels
    ``[1 2 1; 2 4 2; 1 2 1]/4`` for red/blue and ``[0 1 0; 1 4 1; 0 1 0]/4`` for green); at the
    borders only neighbours inside the image are averaged. Measured samples are kept unchanged.
    This is the input DeepISP (Schwartz et al., 2019) takes.
    """
    mosaic = np.asarray(mosaic, dtype=np.float32)
    if mosaic.ndim != 2:
        raise CfaError(f"mosaic must be 2-D, got shape {mosaic.shape}")
    masks = cfa_masks(mosaic.shape, cfa)
    out = np.empty((*mosaic.shape, 3), np.float32)
    for c, kernel in enumerate(BILINEAR_KERNELS):
        mask = masks[..., c].astype(np.float32)
        num = ndimage.convolve(mosaic * mask, kernel, mode="constant", cval=0.0)
        den = ndimage.convolve(mask, kernel, mode="constant", cval=0.0)
        out[..., c] = np.where(masks[..., c], mosaic, num / np.maximum(den, 1e-12))
    return out
