"""PyNET (Ignatov, Van Gool & Timofte, CVPRW 2020): the field's best-known raw→RGB model.

An inverted pyramid of five levels on the packed raw (4 channels at half resolution). Each level
is built from *multi-convolution blocks*: parallel branches of two convolutions with kernel sizes
3, 5, 7, 9 up to the block's largest size (reflection padding, leaky ReLU 0.2, instance norm on
most levels), whose outputs are concatenated. Lower levels are processed first; their features
are upsampled (bilinear ×2, then a 3×3 convolution) into the level above. Level 0 adds a final
×2 upsampling to full resolution, and every level has a sigmoid RGB output used for the paper's
level-by-level training; :meth:`PyNET.render` returns level ``level`` (default 0, full resolution).

References:
    A. Ignatov, L. Van Gool, R. Timofte, "Replacing Mobile Camera ISP with a Single Deep Learning
    Model", CVPR Workshops 2020. arXiv:2002.05509. Code: https://github.com/aiff22/PyNET.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from isp_bench.models._common import IspModel, pad_to_multiple, reflect_pad
from isp_bench.models._registry import ModelCard, register_model


class _ConvLayer(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, norm: bool = False, act: bool = True):
        super().__init__()
        self.k = k
        self.conv = nn.Conv2d(cin, cout, k)
        self.norm = nn.InstanceNorm2d(cout, affine=True) if norm else None
        self.act = act

    def forward(self, x):
        x = self.conv(reflect_pad(x, self.k // 2))
        if self.norm is not None:
            x = self.norm(x)
        return F.leaky_relu(x, 0.2) if self.act else x


class MultiConv(nn.Module):
    """Concatenation of branches conv(k)→conv(k) for k = 3, 5, … ``max_k``; out = ``cout`` × branches."""

    def __init__(self, cin: int, cout: int, max_k: int, norm: bool):
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(_ConvLayer(cin, cout, k, norm), _ConvLayer(cout, cout, k, norm)) for k in range(3, max_k + 1, 2)
        )

    def forward(self, x):
        return torch.cat([b(x) for b in self.branches], dim=1)


class _Up(nn.Module):
    """Bilinear ×2 (align_corners=True) then 3×3 conv + leaky ReLU."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = _ConvLayer(cin, cout, 3)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True))


def _out(cin: int) -> nn.Module:
    return _ConvLayer(cin, 3, 3, act=False)


class PyNET(IspModel):
    """PyNET. ``level`` selects the output (0 = full resolution, 5 = 1/32)."""

    input_kind = "packed_rggb"

    def __init__(self, level: int = 0, instance_norm: bool = True, instance_norm_level_1: bool = False):
        super().__init__()
        self.level = level
        n, n1 = instance_norm, instance_norm_level_1
        M = MultiConv
        self.l1_d1, self.l2_d1 = M(4, 32, 3, False), M(32, 64, 3, n)
        self.l3_d1, self.l4_d1 = M(64, 128, 3, n), M(128, 256, 3, n)
        # level 5
        self.l5 = nn.Sequential(M(256, 512, 3, n), M(512, 512, 3, n), M(512, 512, 3, n), M(512, 512, 3, n))
        self.t4a, self.t4b, self.l5_out = _Up(512, 256), _Up(512, 256), _out(512)
        # level 4
        self.l4_d3, self.l4_d4, self.l4_d5, self.l4_d6 = M(512, 256, 3, n), M(256, 256, 3, n), M(256, 256, 3, n), M(256, 256, 3, n)
        self.l4_d8 = M(512, 256, 3, n)
        self.t3a, self.t3b, self.l4_out = _Up(256, 128), _Up(256, 128), _out(256)
        # level 3
        self.l3_d3, self.l3_d4, self.l3_d5, self.l3_d6 = (M(256, 128, 5, n) for _ in range(4))
        self.l3_d8 = M(512, 128, 3, n)
        self.t2a, self.t2b, self.l3_out = _Up(128, 64), _Up(128, 64), _out(128)
        # level 2
        self.l2_d3 = M(128, 64, 5, n)
        self.l2_d5, self.l2_d6, self.l2_d7, self.l2_d8 = (M(192, 64, 7, n) for _ in range(4))
        self.l2_d10, self.l2_d12 = M(256, 64, 5, n), M(192, 64, 3, n)
        self.t1a, self.t1b, self.l2_out = _Up(64, 32), _Up(64, 32), _out(64)
        # level 1
        self.l1_d3, self.l1_d5 = M(64, 32, 5, False), M(96, 32, 7, n1)
        self.l1_d6, self.l1_d7, self.l1_d8, self.l1_d9 = M(96, 32, 9, n1), M(128, 32, 9, n1), M(128, 32, 9, n1), M(128, 32, 9, n1)
        self.l1_d10, self.l1_d12, self.l1_d14 = M(128, 32, 7, n1), M(128, 32, 5, n1), M(128, 32, 3, False)
        self.t0, self.l1_out = _Up(32, 16), _out(32)
        # level 0
        self.l0_out = _out(16)

    def levels(self, raw: torch.Tensor) -> dict[int, torch.Tensor]:
        """Sigmoid RGB outputs of every level down to ``self.level``, keyed by level."""
        cat = torch.cat
        outs: dict[int, torch.Tensor] = {}
        d1 = self.l1_d1(raw)
        e2 = self.l2_d1(F.max_pool2d(d1, 2))
        e3 = self.l3_d1(F.max_pool2d(e2, 2))
        e4 = self.l4_d1(F.max_pool2d(e3, 2))
        x = self.l5(F.max_pool2d(e4, 2))
        outs[5] = torch.sigmoid(self.l5_out(x))
        if self.level >= 5:
            return outs
        ta, tb = self.t4a(x), self.t4b(x)
        a = self.l4_d3(cat([e4, ta], 1))
        a = self.l4_d4(a) + a
        a = self.l4_d5(a) + a
        x = self.l4_d8(cat([self.l4_d6(a), tb], 1))
        outs[4] = torch.sigmoid(self.l4_out(x))
        if self.level >= 4:
            return outs
        ta, tb = self.t3a(x), self.t3b(x)
        a = cat([e3, ta], 1)
        a = self.l3_d3(a) + a
        a = self.l3_d4(a) + a
        a = self.l3_d5(a) + a
        x = self.l3_d8(cat([self.l3_d6(a), e3, tb], 1))
        outs[3] = torch.sigmoid(self.l3_out(x))
        if self.level >= 3:
            return outs
        ta, tb = self.t2a(x), self.t2b(x)
        a = cat([self.l2_d3(cat([e2, ta], 1)), e2], 1)
        a = self.l2_d5(a) + a
        a = self.l2_d6(a) + a
        a = self.l2_d7(a) + a
        a = self.l2_d10(cat([self.l2_d8(a), e2], 1))
        x = self.l2_d12(cat([a, tb], 1))
        outs[2] = torch.sigmoid(self.l2_out(x))
        if self.level >= 2:
            return outs
        ta, tb = self.t1a(x), self.t1b(x)
        a = self.l1_d5(cat([self.l1_d3(cat([d1, ta], 1)), d1], 1))
        a = self.l1_d6(a)
        a = self.l1_d7(a) + a
        a = self.l1_d8(a) + a
        a = self.l1_d9(a) + a
        a = self.l1_d12(cat([self.l1_d10(a), d1], 1))
        x = self.l1_d14(cat([a, tb, d1], 1))
        outs[1] = torch.sigmoid(self.l1_out(x))
        if self.level >= 1:
            return outs
        outs[0] = torch.sigmoid(self.l0_out(self.t0(x)))
        return outs

    def render(self, batch) -> torch.Tensor:
        raw = self.input_tensor(batch)
        x, (h, w) = pad_to_multiple(raw, 16)
        if x.shape[-2:] == (16, 16):  # the 1/16 level would be one pixel, which instance normalisation cannot take
            x = F.pad(x, (0, 16, 0, 0), mode="replicate")
        out = self.levels(x)[self.level]
        scale = 2 ** (1 - self.level) if self.level <= 1 else None
        if scale is None:  # coarse levels: output at 1/2^(level-1) of the full frame
            return out
        return out[..., : h * scale, : w * scale]


@register_model(ModelCard(
    name="pynet",
    family="pynet",
    paper=("A. Ignatov, L. Van Gool, R. Timofte, \"Replacing Mobile Camera ISP with a Single Deep Learning "
           "Model\", CVPR Workshops 2020"),
    url="https://arxiv.org/abs/2002.05509",
    input_kind="packed_rggb",
    notes=(
        "Layer-for-layer the architecture of the authors' code (TensorFlow original, PyTorch port); inputs whose "
        "half-resolution size is not a multiple of 16 are reflection-padded and the output cropped (frames under "
        "32 px a side are also widened, so that the coarsest level has more than the one pixel instance "
        "normalisation needs).",
        "Training is level by level (5 → 0) with per-level losses; `level` selects which output forward returns.",
    ),
    config={"level": 0},
))
def pynet(level: int = 0) -> PyNET:
    return PyNET(level=level)
