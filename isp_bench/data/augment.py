"""Geometric augmentation that keeps raw and target pixel-exact and the CFA phase RGGB.

Flips and 90° rotations are applied to the *mosaic* and the target together; the result's Bayer
phase is then restored to RGGB by cropping one row and/or column (Liu et al., "Learning Raw Image
Denoising with Bayer Pattern Unification and Bayer Preserving Augmentation", CVPRW 2019). Flipping
the packed channels instead would silently shift every colour plane by a pixel.
"""

from __future__ import annotations

import numpy as np

from isp_bench.raw.cfa import pack_rggb, shift_cfa, unpack_rggb

# The 8 symmetries of the square as (transpose, flip rows, flip columns), applied in that order.
DIHEDRAL = tuple((t, fr, fc) for t in (False, True) for fr in (False, True) for fc in (False, True))


def apply_op(image: np.ndarray, op: tuple[bool, bool, bool]) -> np.ndarray:
    """Apply a dihedral op to the last two axes of a (..., H, W) array."""
    transpose, flip_rows, flip_cols = op
    if transpose:
        image = np.swapaxes(image, -1, -2)
    if flip_rows:
        image = image[..., ::-1, :]
    if flip_cols:
        image = image[..., :, ::-1]
    return image


def pattern_after(op: tuple[bool, bool, bool], shape: tuple[int, int]) -> str:
    """The Bayer pattern at the top-left of an RGGB mosaic of even ``shape`` after ``op``."""
    code = np.tile(np.array([[0, 1], [1, 2]]), (shape[0] // 2, shape[1] // 2))
    tile = apply_op(code, op)[:2, :2]
    return "".join("RGB"[c] for c in tile.ravel())


def crop_packed_patch(
    raw: np.ndarray,
    targets: list[np.ndarray],
    top: int,
    left: int,
    size: tuple[int, int],
    op: tuple[bool, bool, bool] = (False, False, False),
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Cut a patch of ``size`` (full-resolution pixels, even) whose region starts at the even
    full-resolution position (``top``, ``left``), apply ``op``, and return the packed raw
    (4×h/2×w/2) and the targets (C×h×w) still in register.

    The region read is 2 pixels larger than the patch in each direction (transposed for ops that
    transpose) so that the phase can be restored by cropping.
    """
    ph, pw = size
    rh, rw = (pw + 2, ph + 2) if op[0] else (ph + 2, pw + 2)
    mosaic = unpack_rggb(np.asarray(raw[:, top // 2 : (top + rh) // 2, left // 2 : (left + rw) // 2]))
    crops = [np.asarray(t[:, top : top + rh, left : left + rw]) for t in targets]
    if mosaic.shape != (rh, rw):
        raise ValueError(f"patch region {rh}×{rw} at ({top}, {left}) does not fit a packed raw of {raw.shape}")
    mosaic = apply_op(mosaic, op)
    crops = [apply_op(c, op) for c in crops]
    pattern = pattern_after(op, (rh, rw))
    dy, dx = {"RGGB": (0, 0), "GRBG": (0, 1), "GBRG": (1, 0), "BGGR": (1, 1)}[pattern]
    assert shift_cfa(pattern, dy, dx) == "RGGB"
    mosaic = mosaic[dy : dy + ph, dx : dx + pw]
    crops = [np.ascontiguousarray(c[:, dy : dy + ph, dx : dx + pw]) for c in crops]
    packed, _ = pack_rggb(mosaic, "RGGB")
    return np.ascontiguousarray(packed), crops
