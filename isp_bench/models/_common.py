"""Pieces shared by the model families: the batch contract, padding and colour helpers."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from isp_bench.models._registry import ModelError

Batch = dict[str, Any]


class IspModel(nn.Module):
    """Base class of every registered model.

    ``forward(batch)`` takes a dict with ``raw`` (B×4×H/2×W/2, R, Gr, Gb, B, normalised to
    [0, 1] by black and white level) or ``rgb`` (B×3×H×W bilinear-demosaiced linear camera RGB),
    plus the metadata the model's card lists (``wb`` B×4 in packing order R, Gr, Gb, B with
    G = 1, ``iso`` B, ``exposure_s`` B, ``noise`` B×2, ``thumb``, ``color_matrix`` B×3×3 camera→XYZ,
    ``global`` precomputed by :meth:`compute_global`), and returns display sRGB B×3×H×W.

    In eval mode the output is clamped to [0, 1]; in training mode it is returned unclamped so
    that losses see gradients outside the range (as the papers' training code does).
    """

    input_kind: str = "packed_rggb"
    tile_align: int = 16
    """Tile origins for tiled inference are multiples of this many input pixels (the total
    down-sampling factor), so pooling grids line up with the whole frame's."""
    card: Any = None

    def forward(self, batch: Batch) -> torch.Tensor:  # noqa: D401
        out = self.render(batch)
        return out if self.training else out.clamp(0.0, 1.0)

    def render(self, batch: Batch) -> torch.Tensor:
        raise NotImplementedError

    def compute_global(self, batch: Batch, tiler=None) -> dict[str, torch.Tensor] | None:
        """Whole-frame context (``None`` for purely local models). ``tiler(fn, x, scale, align)``
        maps a local function over ``x`` in tiles with bounded memory (``resolution=k`` for an ``x`` with k
        times the model input's pixels, so that its tiles cover as much); ``None`` runs it directly."""
        return None

    def render_frame(self, batch: Batch, tiler) -> torch.Tensor | None:
        """The whole frame rendered from the model's own tiled passes (``tiler`` as for
        :meth:`compute_global`; it may map a function with several outputs at several scales), for a
        model whose global pass computes all its local work anyway; ``None`` (the default): tiled
        inference computes :meth:`compute_global`, then renders tile by tile."""
        return None

    def input_tensor(self, batch: Batch) -> torch.Tensor:
        key = "raw" if self.input_kind == "packed_rggb" else "rgb"
        if key not in batch:
            raise ModelError(
                f"{type(self).__name__} takes batch[{key!r}] ({self.input_kind}); the batch has "
                f"{', '.join(sorted(batch)) or 'no keys'}. Build one with isp_bench.evaluate.batch_from_capture"
            )
        x = batch[key]
        want = 4 if key == "raw" else 3
        if x.ndim != 4 or x.shape[1] != want:
            raise ModelError(f"batch[{key!r}] must be B×{want}×H×W, got shape {tuple(x.shape)}")
        return x


def require(batch: Batch, key: str, model: str, shape_hint: str) -> torch.Tensor:
    if key not in batch or batch[key] is None:
        raise ModelError(
            f"{model} needs batch[{key!r}] ({shape_hint}); it is missing. "
            "isp_bench.evaluate.batch_from_capture fills it from a RawCapture"
        )
    return batch[key]


def run_local(fn, x: torch.Tensor, tiler, scale: float = 1.0, align: int = 1) -> torch.Tensor:
    """Apply a local function directly or through ``tiler`` (see :meth:`IspModel.compute_global`)."""
    return fn(x) if tiler is None else tiler(fn, x, scale=scale, align=align)


def pad_to_multiple(x: torch.Tensor, multiple: int, mode: str = "reflect") -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad bottom/right so H and W are multiples of ``multiple``; returns the tensor and (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        if mode == "reflect" and (ph >= h or pw >= w):
            mode = "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


def reflect_pad(x: torch.Tensor, p: int | tuple[int, int, int, int]) -> torch.Tensor:
    """Reflection padding (left, right, top, bottom) that falls back to replication for inputs smaller
    than the pad. A channels-last input (training on CUDA) is copied once into a channels-last tensor whose
    borders are then filled from its mirrored edges: CUDA's reflection-pad kernel works on a contiguous
    copy and returns one, so every convolution after it would convert the layout back and forth."""
    pads = (p, p, p, p) if isinstance(p, int) else p
    if max(pads) == 0:
        return x
    h, w = x.shape[-2:]
    if not (max(pads[0], pads[1]) < w and max(pads[2], pads[3]) < h):
        return F.pad(x, pads, mode="replicate")
    if x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return _ReflectPad.apply(x, *pads)
    return F.pad(x, pads, mode="reflect")


def mirror_border(padded: torch.Tensor, left: int, right: int, top: int, bottom: int) -> torch.Tensor:
    """Fills, in place, the border of ``padded`` whose inside holds an image, by reflection (the edge itself
    not repeated): the left and right columns of the inside rows first, then the top and bottom rows, corners
    included. Returns ``padded``."""
    h, w = padded.shape[-2] - top - bottom, padded.shape[-1] - left - right
    rows, inside = slice(top, top + h), padded[:, :, top:top + h, left:left + w]
    if left:
        padded[:, :, rows, :left] = inside[..., 1:left + 1].flip(-1)
    if right:
        padded[:, :, rows, left + w:] = inside[..., w - 1 - right:w - 1].flip(-1)
    if top:
        padded[:, :, :top] = padded[:, :, top + 1:2 * top + 1].flip(-2)
    if bottom:
        padded[:, :, top + h:] = padded[:, :, top + h - 1 - bottom:top + h - 1].flip(-2)
    return padded


class _ReflectPad(torch.autograd.Function):
    """``F.pad(x, (left, right, top, bottom), mode="reflect")`` into a channels-last tensor: ``x`` is copied once
    into the inside, the left and right borders from ``x``'s mirrored columns, then the top and bottom rows
    (corners included) from the padded rows (the edge itself is not repeated). The backward pass folds the
    borders back onto the pixels they mirror: one copy of the gradient, where autograd's record of the in-place
    fills made several."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, left: int, right: int, top: int, bottom: int) -> torch.Tensor:
        ctx.pads = left, right, top, bottom
        b, c, h, w = x.shape
        out = torch.empty((b, c, top + h + bottom, left + w + right), dtype=x.dtype, device=x.device,
                          memory_format=torch.channels_last)
        out[:, :, top:top + h, left:left + w] = x
        return mirror_border(out, left, right, top, bottom)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        left, right, top, bottom = ctx.pads
        h, w = grad.shape[-2] - top - bottom, grad.shape[-1] - left - right
        rows = grad[:, :, top:top + h].clone()  # the inside rows, at the padded width
        if top:
            rows[:, :, 1:top + 1] += grad[:, :, :top].flip(-2)
        if bottom:
            rows[:, :, h - 1 - bottom:h - 1] += grad[:, :, top + h:].flip(-2)
        inside = rows[..., left:left + w]
        if left:
            inside[..., 1:left + 1] += rows[..., :left].flip(-1)
        if right:
            inside[..., w - 1 - right:w - 1] += rows[..., left + w:].flip(-1)
        return inside, None, None, None, None


def max_pool_same(x: torch.Tensor, kernel: int = 3, stride: int = 2) -> torch.Tensor:
    """Max pooling with TensorFlow's ``SAME`` padding (output ceil(H/stride); extra pad bottom/right),
    as ``slim.max_pool2d`` in the TensorFlow reference code."""
    h, w = x.shape[-2:]
    if (kernel, stride) == (3, 2) and min(h, w) >= 2:
        # SAME pads an even side by (0, 1) and an odd one by (1, 1): pooling's own padding (1 for odd) and
        # ceil mode (the last window reaches past an even side) give the same windows without a padded copy
        return F.max_pool2d(x, 3, 2, padding=(h % 2, w % 2), ceil_mode=True)
    pads = []
    for n in (w, h):
        out = -(-n // stride)
        total = max((out - 1) * stride + kernel - n, 0)
        pads += [total // 2, total - total // 2]
    if any(pads):
        x = F.pad(x, pads, value=float("-inf"))
    return F.max_pool2d(x, kernel, stride)
