"""Geometric augmentation that keeps raw and target pixel-exact and the CFA phase RGGB.

Flips and 90° rotations are applied to the *mosaic* and the target together; the result's Bayer
phase is then restored to RGGB by cropping one row and/or column (Liu et al., "Learning Raw Image
Denoising with Bayer Pattern Unification and Bayer Preserving Augmentation", CVPRW 2019). Flipping
the packed channels instead would silently shift every colour plane by a pixel.

Each packed channel of the result is one packed channel of the region, flipped/transposed and
offset by at most one tile (:data:`CHANNEL_SOURCES`, derived from the pixel-level definition above):
so the packed patch is four strided *views* of the packed cache array and each target a view of the
full-resolution one offset by the phase crop. :func:`patch_views` returns these views without
copying, so a loader can write them straight into its batch; :meth:`PatchViews.copies` copies them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from isp_bench.raw.cfa import shift_cfa

# The 8 symmetries of the square as (transpose, flip rows, flip columns), applied in that order.
DIHEDRAL = tuple((t, fr, fc) for t in (False, True) for fr in (False, True) for fc in (False, True))

PACKED_ORDER = "RGGB"  # R, Gr, Gb, B


def apply_op(image: np.ndarray, op: tuple[bool, bool, bool]) -> np.ndarray:
    """Apply a dihedral op to the last two axes of a (..., H, W) array (a view, no copy)."""
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


def _phase_crop(op: tuple[bool, bool, bool]) -> tuple[int, int]:
    """Rows and columns to crop after ``op`` so that an even RGGB region starts with red again."""
    pattern = pattern_after(op, (2, 2))
    dy, dx = {"RGGB": (0, 0), "GRBG": (0, 1), "GBRG": (1, 0), "BGGR": (1, 1)}[pattern]
    assert shift_cfa(pattern, dy, dx) == PACKED_ORDER
    return dy, dx


PHASE_CROP = {op: _phase_crop(op) for op in DIHEDRAL}


def _channel_sources(op: tuple[bool, bool, bool]) -> tuple[tuple[int, int, int], ...]:
    """For each packed output channel: (source channel, row offset, column offset) in tiles of the
    region's packed channels after ``op``, found by following labelled pixels through the
    pixel-level definition (op on the mosaic, phase crop, packing)."""
    rh, rw = 8, 10
    labels = np.arange(rh * rw).reshape(rh, rw)
    dy, dx = PHASE_CROP[op]
    patch = apply_op(labels, op)[dy:, dx:]
    sources = []
    for a, b in ((0, 0), (0, 1), (1, 0), (1, 1)):
        y, x = divmod(int(patch[a, b]), rw)
        channel = 2 * (y % 2) + x % 2
        moved = apply_op(labels[y % 2 :: 2, x % 2 :: 2], op)
        oy, ox = (int(v[0]) for v in np.nonzero(moved == patch[a, b]))
        assert np.array_equal(moved[oy : oy + 3, ox : ox + 3], patch[a::2, b::2][:3, :3])
        sources.append((channel, oy, ox))
    return tuple(sources)


CHANNEL_SOURCES = {op: _channel_sources(op) for op in DIHEDRAL}


def region_shape(size: tuple[int, int], op: tuple[bool, bool, bool]) -> tuple[int, int]:
    """Full-resolution (height, width) a patch of ``size`` reads before ``op``: 2 pixels more in each
    direction (for the phase crop), transposed for ops that transpose."""
    ph, pw = size
    return (pw + 2, ph + 2) if op[0] else (ph + 2, pw + 2)


@dataclass(frozen=True)
class PatchViews:
    """Views of one augmented patch, sharing memory with the arrays cut from: ``raw`` (the four packed
    channels R, Gr, Gb, B, each h/2×w/2) and the target ``regions`` (C×rh×rw each, before the op);
    :meth:`place` turns a region (or any array of its shape, e.g. converted to float) into the patch."""

    raw: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    regions: list[np.ndarray]
    op: tuple[bool, bool, bool]
    size: tuple[int, int]

    def packed_raw(self, out: np.ndarray | None = None) -> np.ndarray:
        """The packed raw patch 4×h/2×w/2 (a copy; into ``out`` when given)."""
        if out is None:
            out = np.empty((4, *self.raw[0].shape), self.raw[0].dtype)
        for channel, view in zip(out, self.raw):
            channel[...] = view
        return out

    def place(self, region: np.ndarray) -> np.ndarray:
        """The C×h×w patch view of a C×rh×rw region: the op, then the phase crop."""
        dy, dx = PHASE_CROP[self.op]
        return apply_op(region, self.op)[:, dy : dy + self.size[0], dx : dx + self.size[1]]

    @property
    def targets(self) -> list[np.ndarray]:
        return [self.place(region) for region in self.regions]

    def copies(self) -> tuple[np.ndarray, list[np.ndarray]]:
        """The packed raw (4×h/2×w/2) and the targets (C×h×w), still in register, as contiguous copies."""
        return self.packed_raw(), [np.ascontiguousarray(t) for t in self.targets]


def patch_views(
    raw: np.ndarray,
    targets: list[np.ndarray],
    top: int,
    left: int,
    size: tuple[int, int],
    op: tuple[bool, bool, bool] = (False, False, False),
) -> PatchViews:
    """Views of the patch of ``size`` (full-resolution pixels, even) whose region starts at the even
    full-resolution position (``top``, ``left``) of a packed raw (4×h×w) and its targets (C×2h×2w),
    after ``op``; see the module docstring."""
    ph, pw = size
    rh, rw = region_shape(size, op)
    region = raw[:, top // 2 : (top + rh) // 2, left // 2 : (left + rw) // 2]
    if region.shape[1:] != (rh // 2, rw // 2):
        raise ValueError(f"patch region {rh}×{rw} at ({top}, {left}) does not fit a packed raw of {raw.shape}")
    moved = apply_op(region, op)
    channels = tuple(moved[c, oy : oy + ph // 2, ox : ox + pw // 2] for c, oy, ox in CHANNEL_SOURCES[op])
    return PatchViews(channels, [t[:, top : top + rh, left : left + rw] for t in targets], op, (ph, pw))
