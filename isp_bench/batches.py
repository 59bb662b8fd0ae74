"""Model batches: the one place that turns a RawCapture or a manifest row into what models take.

A batch (the contract of :class:`isp_bench.models._common.IspModel`) holds ``raw`` (B×4×h×w packed
R, Gr, Gb, B, normalised), optionally ``rgb`` (B×3×2h×2w bilinear-demosaiced camera RGB,
:func:`bilinear_rgb`) and ``thumb`` (B×3×368×480 whole-frame thumbnail, :func:`make_thumb`), and the
capture metadata (:func:`metadata_tensors`): ``wb`` (B×4, R, Gr, Gb, B with G = 1), ``color_matrix``
(B×3×3 camera → XYZ), ``iso`` (B), ``exposure_s`` (B, seconds), ``noise`` (B×2, the first
NoiseProfile pair S, O).

**Missing metadata, one policy.** Reading never guesses (DESIGN.md §3): a value the source does not
carry is left *out* of the batch, so a model that needs it fails with an error naming the key. A
batch stacked from several pairs (training, evaluation) must hold the same keys for every frame; it
asks for ``fill_missing=True``, which fills the neutral value of :data:`NEUTRAL_METADATA` (white
balance 1, identity colour matrix, 0 for ISO, exposure and noise) and nothing else. Sources are
read by the same field names whether they are a :class:`~isp_bench.raw.RawCapture` or a manifest
row (``wb_as_shot``, ``color_matrix``, ``iso``, ``exposure_s``, ``noise_profile``); ``None``, an
empty list and 0 (an ISO or exposure time of 0 is not a measurement) all count as not recorded.

This module imports neither models nor data: both build their batches through it.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from isp_bench.raw import demosaic_bilinear, unpack_rggb
from isp_bench.raw.cfa import BILINEAR_KERNELS, cfa_masks

THUMB_HW = (368, 480)
"""(height, width) of the whole-frame thumbnail CRISPnet's global branch sees."""

NEUTRAL_METADATA: dict[str, Any] = {"wb_as_shot": (1.0, 1.0, 1.0), "color_matrix": np.eye(3), "iso": 0.0,
                                    "exposure_s": 0.0, "noise_profile": (0.0, 0.0)}
"""The values :func:`metadata_tensors` fills with ``fill_missing=True`` (see the module docstring)."""


def _field(source: Any, name: str) -> Any:
    value = source.get(name) if isinstance(source, Mapping) else getattr(source, name, None)
    if value is None or (np.ndim(value) == 0 and not value) or (np.ndim(value) > 0 and len(value) == 0):
        return None  # absent, or 0 / empty (a manifest's "not recorded")
    return value


def metadata_tensors(source: Any, *, fill_missing: bool = False,
                     device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The metadata of one frame as float32 tensors without a batch axis: ``wb`` (4,), ``color_matrix``
    (3, 3), ``iso`` and ``exposure_s`` (scalars), ``noise`` (2,). ``source`` is a RawCapture or a
    manifest row; missing values follow the module's policy.

    >>> sorted(metadata_tensors({"iso": 800, "wb_as_shot": [2.0, 1.0, 1.5]}))
    ['iso', 'wb']
    >>> metadata_tensors({}, fill_missing=True)["wb"].tolist()
    [1.0, 1.0, 1.0, 1.0]
    """
    def read(name: str) -> Any:
        value = _field(source, name)
        return NEUTRAL_METADATA[name] if value is None and fill_missing else value

    f32 = lambda v: torch.tensor(v, dtype=torch.float32, device=device)  # noqa: E731
    out: dict[str, torch.Tensor] = {}
    if (wb := read("wb_as_shot")) is not None:
        r, g, b = (float(v) for v in wb)
        out["wb"] = f32([r / g, 1.0, 1.0, b / g])
    if (matrix := read("color_matrix")) is not None:
        out["color_matrix"] = f32(np.asarray(matrix, np.float32).reshape(3, 3))
    for name in ("iso", "exposure_s"):
        if (value := read(name)) is not None:
            out[name] = f32(float(value))
    if (noise := read("noise_profile")) is not None:
        out["noise"] = f32([float(v) for v in list(noise)[:2]])
    return out


def bilinear_rgb(raw: torch.Tensor) -> torch.Tensor:
    """Packed raw B×4×h×w → bilinear-demosaiced B×3×2h×2w (the input DeepISP takes): on the CPU
    :func:`isp_bench.raw.demosaic_bilinear` itself, elsewhere the same kernels as convolutions on the
    tensor's device (:func:`bilinear_rgb_torch`; a GPU frame does not make a round trip through the host)."""
    if raw.device.type != "cpu":
        return bilinear_rgb_torch(raw)
    mosaics = unpack_rggb(raw.detach().numpy())
    rgb = np.stack([demosaic_bilinear(m, "RGGB") for m in mosaics])
    return torch.from_numpy(rgb).permute(0, 3, 1, 2).to(raw)


def bilinear_rgb_torch(raw: torch.Tensor) -> torch.Tensor:
    """:func:`isp_bench.raw.demosaic_bilinear` of an RGGB packed raw, in torch on ``raw``'s device: each
    missing sample the kernel-weighted mean of the same colour's samples inside the frame, measured
    samples kept (equal to the scipy version to float32 rounding; tested)."""
    mosaic = F.pixel_shuffle(raw, 2)  # B×1×2h×2w; channels R, Gr, Gb, B land at (0,0), (0,1), (1,0), (1,1)
    height, width = mosaic.shape[-2:]
    tile = torch.from_numpy(cfa_masks((2, 2), "RGGB")).permute(2, 0, 1).to(raw)
    masks = tile.repeat(1, height // 2, width // 2)[None]  # 1×3×H×W: where R, G, B are sampled
    kernels = torch.from_numpy(BILINEAR_KERNELS[:, None]).to(raw)
    weights = F.conv2d(masks, kernels, padding=1, groups=3)
    interpolated = F.conv2d(mosaic * masks, kernels, padding=1, groups=3) / weights
    return torch.where(masks.bool(), mosaic, interpolated)


def make_thumb(raw: torch.Tensor, size: tuple[int, int] = THUMB_HW) -> torch.Tensor:
    """Whole-frame thumbnail for CRISPnet's global branch: packed raw B×4×h×w → B×3×368×480
    (R, mean of the greens, B; area-averaged when shrinking, bilinear when enlarging).

    Computed on one CPU thread: torch's bilinear resampling rounds differently with other thread
    counts (1 ulp), and a thumbnail must be the same in the trainer, in a loader worker (one thread)
    and at evaluation."""
    rgb = torch.stack([raw[:, 0], 0.5 * (raw[:, 1] + raw[:, 2]), raw[:, 3]], dim=1)
    h, w = rgb.shape[-2:]
    mode = "area" if h >= size[0] and w >= size[1] else "bilinear"
    kwargs = {} if mode == "area" else {"align_corners": False}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return F.interpolate(rgb, size=size, mode=mode, **kwargs)
    finally:
        torch.set_num_threads(threads)


def frame_batch(packed: np.ndarray, source: Any, *, fill_missing: bool = False, rgb: bool = False,
                device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The batch (batch size 1) of a packed raw 4×h×w and the metadata of ``source`` (a RawCapture
    or manifest row), with ``rgb`` when asked."""
    batch: dict[str, torch.Tensor] = {"raw": torch.from_numpy(np.ascontiguousarray(packed))[None].to(device)}
    batch.update({k: v[None] for k, v in metadata_tensors(source, fill_missing=fill_missing, device=device).items()})
    if rgb:
        batch["rgb"] = bilinear_rgb(batch["raw"])
    return batch


def capture_batch(capture, *, rgb: bool = False, device: str | torch.device = "cpu") -> tuple[dict[str, Any], Any]:
    """The batch (batch size 1) of a :class:`~isp_bench.raw.RawCapture` and its CfaCrop (crop the
    target with it); metadata the file lacks is left out."""
    packed, crop = capture.packed()
    return frame_batch(packed, capture, rgb=rgb, device=device), crop
