"""Multiply-accumulate (MAC) counting with forward hooks.

:func:`count_macs` registers a forward hook on every module whose cost it knows, runs one forward
pass, and adds up the MACs implied by the input and output *shapes*. Run on PyTorch's ``meta``
device (the default for :func:`isp_bench.models.model_card`), the pass allocates no memory and does
no arithmetic, so counting a 4032×3024 frame is instant.

What is counted (the convention of fvcore/thop and of the ISP papers' "GFLOPs" divided by two):

- ``Conv2d``: output elements × (C_in / groups) × k_h × k_w.
- ``ConvTranspose2d``: input elements × (C_out / groups) × k_h × k_w.
- ``Linear``: output elements × in_features.
- timm's ``XCA`` (cross-covariance attention): 2 × B × N × C × C/heads (QᵀK and the product with V);
  ``ClassAttn``: 2 × B × N × C. Their q/k/v/proj ``Linear`` layers are counted as Linear.
- any module defining ``extra_macs(inputs, output) -> int`` (e.g. DeepISP's per-pixel quadratic
  colour transform).

Not counted: biases, activations, normalisation, pooling, interpolation, element-wise arithmetic.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from isp_bench.batches import THUMB_HW, metadata_tensors


@dataclass
class MacReport:
    """Result of :func:`count_macs`: the total, and the split per module and per module type."""

    total: int = 0
    by_module: dict[str, int] = field(default_factory=dict)
    by_type: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def gflops(self) -> float:
        """2 FLOPs per MAC, the convention of the papers' GFLOPs columns."""
        return 2 * self.total / 1e9


def _conv_macs(m: nn.Conv2d, inputs, out: torch.Tensor) -> int:
    kh, kw = m.kernel_size
    return out.numel() * (m.in_channels // m.groups) * kh * kw


def _deconv_macs(m: nn.ConvTranspose2d, inputs, out: torch.Tensor) -> int:
    kh, kw = m.kernel_size
    return inputs[0].numel() * (m.out_channels // m.groups) * kh * kw


def _linear_macs(m: nn.Linear, inputs, out: torch.Tensor) -> int:
    return out.numel() * m.in_features


def _xca_macs(m: nn.Module, inputs, out: torch.Tensor) -> int:
    b, n, c = inputs[0].shape
    return 2 * b * n * c * (c // m.num_heads)


def _class_attn_macs(m: nn.Module, inputs, out: torch.Tensor) -> int:
    b, n, c = inputs[0].shape
    return 2 * b * n * c


def _rules() -> dict[type, Any]:
    rules: dict[type, Any] = {
        nn.Conv2d: _conv_macs,
        nn.ConvTranspose2d: _deconv_macs,
        nn.Linear: _linear_macs,
    }
    try:
        from timm.models.xcit import XCA, ClassAttn

        rules[XCA] = _xca_macs
        rules[ClassAttn] = _class_attn_macs
    except ImportError:  # timm only needed for CRISPnet
        pass
    return rules


def count_macs(model: nn.Module, batch: dict[str, Any]) -> MacReport:
    """MACs of one ``model(batch)`` forward pass (see the module docstring for what counts).

    The model is run in eval mode under ``torch.no_grad``; put model and batch on the ``meta``
    device to count without computing.
    """
    report = MacReport()
    rules = _rules()
    handles = []

    def make_hook(name: str, fn):
        def hook(module, inputs, output):
            macs = int(fn(module, inputs, output))
            report.total += macs
            report.by_module[name] = report.by_module.get(name, 0) + macs
            report.by_type[type(module).__name__] += macs

        return hook

    for name, module in model.named_modules():
        fn = getattr(module, "extra_macs", None)
        if fn is not None:
            handles.append(module.register_forward_hook(make_hook(name, lambda m, i, o: m.extra_macs(i, o))))
        for cls, rule in rules.items():
            if type(module) is cls:
                handles.append(module.register_forward_hook(make_hook(name, rule)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(batch)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    report.by_type = dict(report.by_type)
    return report


def count_params(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters (every parameter, or those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


EXAMPLE_METADATA = {"wb_as_shot": (1.0, 1.0, 1.0), "color_matrix": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
                    "iso": 100.0, "exposure_s": 0.01}
"""Capture metadata of :func:`example_batch`: neutral white balance and colour, ISO 100, 1/100 s, no noise profile."""


def example_batch(card, frame_hw: tuple[int, int], *, batch_size: int = 1, device: str | torch.device = "cpu",
                  seed: int = 0) -> dict[str, torch.Tensor]:
    """A batch with every key ``card`` needs for a frame of ``frame_hw`` (full-resolution H, W).

    Image values are random in [0, 1]; the metadata is :data:`EXAMPLE_METADATA`, built into tensors
    by :func:`isp_bench.batches.metadata_tensors` like every batch. On the meta device they carry
    only shapes.
    """
    h, w = frame_hw
    b = batch_size
    device = torch.device(device)
    gen = None if device.type == "meta" else torch.Generator().manual_seed(seed)

    def rand(*shape):
        if device.type == "meta":
            return torch.empty(*shape, device=device)
        return torch.rand(*shape, generator=gen).to(device)

    batch: dict[str, torch.Tensor] = {}
    if card.input_kind == "packed_rggb":
        batch["raw"] = rand(b, 4, h // 2, w // 2)
    else:
        batch["rgb"] = rand(b, 3, h, w)
    for key, value in metadata_tensors(EXAMPLE_METADATA, fill_missing=True).items():
        batch[key] = value.to(device).expand(b, *value.shape).clone()
    if "thumb" in card.metadata:
        batch["thumb"] = rand(b, 3, *THUMB_HW)
    return batch
