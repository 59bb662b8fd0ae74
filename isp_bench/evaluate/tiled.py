"""Full-resolution inference of a 12 MP frame in tiles, with bounded memory.

:func:`infer_full` cuts the model's input into tiles, runs each with ``overlap`` pixels of context
on every side, and keeps only each tile's core, so that the stitched result equals untiled
inference wherever the model's receptive field fits inside the overlap (to float rounding). Tile
origins are multiples of the model's ``tile_align`` (its total down-sampling factor) so pooling
grids line up with the whole frame's.

Models with a global branch (DeepISP's high-level stage, CameraNet's global MLP, CRISPnet's XCiT)
get the *whole frame's* global input on every tile: :func:`infer_full` first calls
``model.compute_global(batch, tiler)``, which itself maps the local part of the global path over
tiles (CameraNet) or looks at the whole-frame thumbnail (CRISPnet), and passes the result as
``batch['global']`` to every tile. A model whose global pass already computes everything local
renders the frame itself from its own tiled passes (``model.render_frame(batch, tiler)``: DeepISP,
whose low-level stage would otherwise run twice, and CameraNet, whose Restore-Net would).

Speed: ``tile_batch`` tiles of one shape go through the model in one forward pass (the frame's
metadata and global input repeated for each), under autocast in the run's ``precision``, with the
tiles channels-last on CUDA.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from isp_bench.batches import bilinear_rgb, capture_batch
from isp_bench.devices import autocast, memory_format
from isp_bench.errors import IspBenchError

TILE_ALIGN_DEFAULT = 16


class InferenceError(IspBenchError):
    """Tiled inference was asked for something it cannot do (bad tile size, bad batch)."""


def _ceil_to(n: int, m: int) -> int:
    return -(-int(n) // m) * m


def tiled_map(fn: Callable[[torch.Tensor], Any], x: torch.Tensor, *, scale: float | tuple[float, ...] = 1.0,
              tile: int = 256, overlap: int = 32, align: int = 1, tile_batch: int = 1) -> Any:
    """Apply a local function ``fn`` (B×C×h×w → B×C'×h·scale×w·scale) over ``x`` in tiles.

    Args:
        fn: the local computation; it must be translation-equivariant on the ``align`` grid and treat
            the items of its batch independently (it receives up to ``tile_batch`` tiles of ``x``
            stacked tile-major: k·B×C×h×w, the B frames of the first tile, then of the second, …).
            With a tuple ``scale`` it returns a tuple of outputs, one per scale.
        x: input B×C×H×W.
        scale: output pixels per input pixel (2 for packed raw → full resolution, 1/4 for a
            stride-4 feature map), or a tuple of them; ``align × scale`` must be a whole number.
        tile: core tile size in input pixels (rounded up to a multiple of ``align``).
        overlap: context on every side in input pixels (rounded up to a multiple of ``align``).
        align: tile origins are multiples of this (the function's down-sampling factor).
        tile_batch: tiles of equal shape per call of ``fn``.

    Returns:
        The stitched output (a tuple of them for a tuple ``scale``); equal to ``fn(x)`` where ``fn``'s
        receptive field fits the overlap.
    """
    scales = tuple(scale) if isinstance(scale, (tuple, list)) else (scale,)
    if tile <= 0 or overlap < 0 or tile_batch < 1:
        raise InferenceError(f"tile ({tile}) and tile_batch ({tile_batch}) must be positive and overlap ({overlap}) "
                             "non-negative")
    for s in scales:
        if abs(align * s - round(align * s)) > 1e-9:
            raise InferenceError(f"align {align} × scale {s} must be a whole number of output pixels")
    tile, overlap = _ceil_to(tile, align), _ceil_to(overlap, align)
    height, width = x.shape[-2:]
    outs: list[torch.Tensor | None] = [None] * len(scales)
    extents = [[0, 0] for _ in scales]  # stitched height, width of each output

    def spans(n: int):
        for s in range(0, n, tile):
            e = min(s + tile, n)
            yield s, e, max(0, s - overlap), min(n, e + overlap)

    by_shape: dict[tuple[int, int], list[tuple[int, ...]]] = {}
    for sy, ey, esy, eey in spans(height):
        for sx, ex, esx, eex in spans(width):
            by_shape.setdefault((eey - esy, eex - esx), []).append((sy, ey, esy, eey, sx, ex, esx, eex))
    chunks = [same[i:i + tile_batch] for same in by_shape.values() for i in range(0, len(same), tile_batch)]
    frames = x.shape[0]
    for chunk in chunks:
        results = fn(torch.cat([x[..., esy:eey, esx:eex] for _, _, esy, eey, _, _, esx, eex in chunk]))
        results = results if isinstance(results, (tuple, list)) else (results,)
        if len(results) != len(scales):
            raise InferenceError(f"the tiled function gave {len(results)} outputs for {len(scales)} scales {scales}")
        for i, (ys, s) in enumerate(zip(results, scales)):
            for j, (sy, ey, esy, eey, sx, ex, esx, eex) in enumerate(chunk):
                y = ys[j * frames:(j + 1) * frames]
                oy0, ox0 = round((sy - esy) * s), round((sx - esx) * s)
                oy1 = y.shape[-2] if ey == height else round((ey - esy) * s)
                ox1 = y.shape[-1] if ex == width else round((ex - esx) * s)
                dy, dx = round(sy * s), round(sx * s)
                if outs[i] is None:  # at least fp32, whatever autocast computed in
                    outs[i] = y.new_zeros(*y.shape[:-2], int(np.ceil(height * s)) + 1, int(np.ceil(width * s)) + 1,
                                          dtype=torch.promote_types(y.dtype, torch.float32))
                outs[i][..., dy : dy + oy1 - oy0, dx : dx + ox1 - ox0] = y[..., oy0:oy1, ox0:ox1]
                extents[i] = [max(extents[i][0], dy + oy1 - oy0), max(extents[i][1], dx + ox1 - ox0)]
    stitched = tuple(out[..., :h, :w] for out, (h, w) in zip(outs, extents))
    return stitched if isinstance(scale, (tuple, list)) else stitched[0]


def batch_from_capture(capture, *, require_color: bool = False, rgb: bool = False,
                       device: str | torch.device = "cpu") -> tuple[dict[str, Any], Any]:
    """The model batch (batch size 1) for a :class:`~isp_bench.raw.RawCapture`, and the CfaCrop.

    Built by :func:`isp_bench.batches.capture_batch` (keys and the policy for missing metadata are
    documented there: metadata the file lacks is left out, never guessed); with ``require_color`` a
    missing white balance or colour matrix raises.
    """
    batch, crop = capture_batch(capture, rgb=rgb, device=device)
    missing = [k for k in ("wb", "color_matrix") if k not in batch]
    if require_color and missing:
        raise InferenceError(
            f"capture {capture.make or ''} {capture.model or ''} has no {', '.join(missing)}; the classic pipeline "
            "needs both (fill them from the dataset adapter's documented constants)"
        )
    return batch, crop


def _repeat_frames(value: Any, frames: int, times: int) -> Any:
    """``value`` (a tensor or nested dict of them, batch dimension ``frames``) repeated ``times`` along
    the batch dimension, matching tiles stacked tile-major; anything else as it is."""
    if isinstance(value, dict):
        return {k: _repeat_frames(v, frames, times) for k, v in value.items()}
    if times > 1 and isinstance(value, torch.Tensor) and value.ndim >= 1 and value.shape[0] == frames:
        return value.repeat(times, *([1] * (value.ndim - 1)))
    return value


def infer_full(model, capture_or_batch, tile: int = 512, overlap: int = 64, *, precision: str = "fp32",
               tile_batch: int = 8) -> torch.Tensor:
    """Render a whole frame with ``model`` in tiles; returns sRGB B×3×H×W in [0, 1] (fp32).

    Args:
        model: a registered model (``create_model``); it is put in eval mode.
        capture_or_batch: a :class:`~isp_bench.raw.RawCapture` (converted with
            :func:`batch_from_capture`; crop the target with its ``CfaCrop``) or a batch dict.
        tile: core tile size in output (full-resolution) pixels.
        overlap: context on each side in output pixels; results equal untiled inference where the
            model's receptive field fits in it.
        precision: ``fp32``, ``bf16`` or ``fp16`` (autocast; see :func:`isp_bench.devices.resolve_precision`).
        tile_batch: tiles per forward pass.

    Memory is bounded by ``tile_batch`` tiles (plus the global pass's reduced-resolution features).
    """
    if isinstance(capture_or_batch, dict):
        batch = dict(capture_or_batch)
    else:
        batch, _ = batch_from_capture(capture_or_batch)
    kind = getattr(model, "input_kind", "packed_rggb")
    if kind == "bilinear_rgb" and "rgb" not in batch:
        if "raw" not in batch:
            raise InferenceError("batch needs 'raw' or 'rgb'")
        batch["rgb"] = bilinear_rgb(batch["raw"])
    key, scale = ("raw", 2) if kind == "packed_rggb" else ("rgb", 1)
    if key not in batch:
        raise InferenceError(f"{type(model).__name__} takes batch[{key!r}]; the batch has {', '.join(sorted(batch))}")
    x = batch[key]
    align = getattr(model, "tile_align", TILE_ALIGN_DEFAULT)
    in_tile, in_overlap = max(1, tile // scale), overlap // scale
    layout = memory_format(str(x.device))

    def tiler(fn, frame: torch.Tensor, scale: Any = 1.0, align: int = 1, resolution: float = 1.0) -> Any:
        """The model's own tiled passes (:meth:`compute_global`, :meth:`render_frame`), on the tiles of
        this call, channels-last on CUDA like the rendering pass. ``resolution``: ``frame``'s pixels per
        pixel of the model's input (2 for a full-resolution image made from packed raw), so that its tiles
        cover what the input's do."""
        return tiled_map(lambda tiles: fn(tiles.contiguous(memory_format=layout)), frame, scale=scale, align=align,
                         tile=round(in_tile * resolution), overlap=round(in_overlap * resolution),
                         tile_batch=tile_batch)

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), autocast(str(x.device), precision):
            whole = model.render_frame(batch, tiler)
            if whole is not None:
                return whole.clamp(0.0, 1.0).float()
            g = model.compute_global(batch, tiler=tiler)
            rest = {k: v for k, v in batch.items() if k not in ("raw", "rgb")}
            if g is not None:
                rest["global"] = g

            def run(tiles: torch.Tensor) -> torch.Tensor:
                times = tiles.shape[0] // x.shape[0]
                return model({**_repeat_frames(rest, x.shape[0], times),
                              key: tiles.contiguous(memory_format=layout)})

            return tiled_map(run, x, scale=scale, tile=in_tile, overlap=in_overlap, align=align,
                             tile_batch=tile_batch).float()
    finally:
        model.train(was_training)
