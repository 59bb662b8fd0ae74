"""CRISPnet (Souza & Heidrich 2022) and its ablations, as the paper describes them.

Packed raw in (4 channels at half resolution), sRGB out. Three parts:

- **UNet** with two 3×3 convolutions (leaky ReLU 0.2) per level at 32, 64, 128, 256 channels,
  2×2 max-pool down, 2×2 transposed convolution up with concatenated skips, and *residual blocks
  only in the 512-channel bottleneck*; a 1×1 head to 12 channels and depth-to-space ×2.
- **White-balance branch**: the as-shot white balance (4 values in packing order R, Gr, Gb, B,
  G = 1) through a chain of linear layers without activations (4→32→64→128); each output scales the
  features channel-wise at one of the first three down-sampling levels.
- **Global-semantics branch**: an XCiT built from timm's XCiT blocks (the "tiny" configuration,
  embedding 192, 4 heads, patch 16, reduced to depth 4, with its two class-attention blocks) on the
  *whole frame* downsampled to 368×480 (``batch['thumb']``: R, mean(Gr, Gb), B of the packed raw);
  its CLS token, projected by a 1×1 convolution to 512 channels, scales the bottleneck channel-wise.

Training works on 368×480 patches with the downsampled full frame beside each patch
(``thumb``), so that patch training and full-frame inference see the same global input.

References:
    M. Souza, W. Heidrich, "CRISPnet: Color Rendition ISP Net", arXiv:2203.10562, 2022.
    A. El-Nouby et al., "XCiT: Cross-Covariance Image Transformers", NeurIPS 2021 (timm's xcit.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from isp_bench.batches import THUMB_HW, make_thumb
from isp_bench.models._common import IspModel, pad_to_multiple, reflect_pad
from isp_bench.models._registry import ModelCard, register_model

_PAPER = "M. Souza, W. Heidrich, \"CRISPnet: Color Rendition ISP Net\", arXiv:2203.10562, 2022"
_URL = "https://arxiv.org/abs/2203.10562"


class _DoubleConv(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3)
        self.conv2 = nn.Conv2d(cout, cout, 3)

    def forward(self, x):
        x = F.leaky_relu(self.conv1(reflect_pad(x, 1)), 0.2)
        return F.leaky_relu(self.conv2(reflect_pad(x, 1)), 0.2)


class _ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3)
        self.conv2 = nn.Conv2d(c, c, 3)

    def forward(self, x):
        y = F.leaky_relu(self.conv1(reflect_pad(x, 1)), 0.2)
        return x + self.conv2(reflect_pad(y, 1))


def _dense_gradient_into(module: nn.Module, inputs, output: torch.Tensor) -> None:
    """Forward hook on XCiT's convolutional patch embedding: the gradient coming back into it is made dense
    in the output's own layout. What timm's ``flatten(2).transpose(1, 2)`` sends back for a batch of one has
    channels-last strides with a degenerate batch stride, and torch's CPU batch-norm backward then computes
    a wrong gradient (torch 2.14; a batch of one in NCHW, as a CPU run with one patch per process trains:
    the thumbnail's gradient had a largest value of 0.045 where finite differences give 8.66; tested)."""
    if output.requires_grad and output.shape[0] == 1:  # larger batches get right gradients: left as they are
        layout = torch.channels_last if not output.is_contiguous() else torch.contiguous_format
        output.register_hook(lambda grad: grad.contiguous(memory_format=layout))


class GlobalSemantics(nn.Module):
    """XCiT-tiny (depth 4) from timm's blocks on the thumbnail → B×``out_ch`` channel scales."""

    def __init__(self, out_ch: int = 512, depth: int = 4, embed_dim: int = 192, num_heads: int = 4):
        super().__init__()
        from timm.models.xcit import Xcit

        # timm never downloads here: the class is built directly, no pretrained cfg involved.
        self.xcit = Xcit(img_size=THUMB_HW, patch_size=16, in_chans=3, num_classes=0, embed_dim=embed_dim,
                         depth=depth, num_heads=num_heads, eta=1.0, tokens_norm=True)
        self.xcit.patch_embed.proj.register_forward_hook(_dense_gradient_into)
        self.proj = nn.Conv2d(embed_dim, out_ch, 1)

    def forward(self, thumb: torch.Tensor) -> torch.Tensor:
        cls = self.xcit.forward_features(thumb)[:, 0]
        return self.proj(cls[:, :, None, None])[:, :, 0, 0]


class CRISPnet(IspModel):
    """CRISPnet; ``use_wb`` / ``use_global`` switch the branches off for the paper's ablations.

    Args:
        use_wb: white-balance branch (needs ``batch['wb']``).
        use_global: global-semantics branch (uses ``batch['thumb']``, computed from ``raw`` when absent).
        n_res_blocks: residual blocks in the 512-channel bottleneck.
        xcit_depth: XCiT blocks (paper: the tiny variant reduced to 4).
    """

    input_kind = "packed_rggb"

    def __init__(self, use_wb: bool = True, use_global: bool = True, n_res_blocks: int = 4, xcit_depth: int = 4,
                 channels: tuple[int, ...] = (32, 64, 128, 256, 512)):
        super().__init__()
        ch = channels
        self.ch = ch
        self.encoder = nn.ModuleList(_DoubleConv(4 if i == 0 else ch[i - 1], ch[i]) for i in range(len(ch) - 1))
        self.bottleneck_in = _DoubleConv(ch[-2], ch[-1])
        self.res_blocks = nn.Sequential(*[_ResBlock(ch[-1]) for _ in range(n_res_blocks)])
        self.up = nn.ModuleList(nn.ConvTranspose2d(ch[i + 1], ch[i], 2, stride=2) for i in reversed(range(len(ch) - 1)))
        self.decoder = nn.ModuleList(_DoubleConv(2 * ch[i], ch[i]) for i in reversed(range(len(ch) - 1)))
        self.head = nn.Conv2d(ch[0], 12, 1)
        self.wb_branch = None
        if use_wb:
            dims = (4, *ch[:3])
            self.wb_branch = nn.ModuleList(nn.Linear(dims[i], dims[i + 1]) for i in range(3))
        self.global_branch = GlobalSemantics(ch[-1], depth=xcit_depth) if use_global else None
        for m in [*self.encoder, self.bottleneck_in, self.res_blocks, *self.up, *self.decoder, self.head]:
            for layer in m.modules():  # He initialisation for the leaky-ReLU UNet (signal reaches the bottleneck)
                if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
                    nn.init.kaiming_normal_(layer.weight, a=0.2, nonlinearity="leaky_relu")
                    nn.init.zeros_(layer.bias)
        for block in self.res_blocks:  # residual branches start near identity
            block.conv2.weight.data.mul_(0.1)
        if self.wb_branch is not None:  # the WB scales start near 1 for WB = 1
            for layer in self.wb_branch:
                nn.init.normal_(layer.weight, std=0.02)
                nn.init.ones_(layer.bias)
        if self.global_branch is not None:  # the global scale starts at 1
            nn.init.normal_(self.global_branch.proj.weight, std=0.02)
            nn.init.ones_(self.global_branch.proj.bias)

    @property
    def metadata(self) -> tuple[str, ...]:
        return (("wb",) if self.wb_branch is not None else ()) + (("thumb",) if self.global_branch is not None else ())

    def compute_global(self, batch, tiler=None):
        if self.global_branch is None:
            return None
        thumb = batch.get("thumb")
        if thumb is None:
            thumb = make_thumb(self.input_tensor(batch))
        return {"crispnet_scale": self.global_branch(thumb)}

    def render(self, batch) -> torch.Tensor:
        raw = self.input_tensor(batch)
        x, (h, w) = pad_to_multiple(raw, 2 ** (len(self.ch) - 1))
        scales = []
        if self.wb_branch is not None:
            from isp_bench.models._common import require

            s = require(batch, "wb", "crispnet", "B×4 white balance, R, Gr, Gb, B with G = 1").to(x.dtype)
            for layer in self.wb_branch:
                s = layer(s)
                scales.append(s)
        skips = []
        for i, level in enumerate(self.encoder):
            x = level(x)
            if i < len(scales):
                x = x * scales[i][:, :, None, None]
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.res_blocks(self.bottleneck_in(x))
        if self.global_branch is not None:
            g = batch.get("global") or self.compute_global(batch)
            x = x * g["crispnet_scale"][:, :, None, None]
        for up, level, skip in zip(self.up, self.decoder, reversed(skips)):
            x = level(torch.cat([up(x), skip], dim=1))
        out = F.pixel_shuffle(self.head(x), 2)
        return out[..., : 2 * h, : 2 * w]


_NOTES = (
    "Built from the paper's description; the paper publishes no layer table and no code was available to "
    "us, so the number of bottleneck residual blocks (4), the per-level widths, the WB layer widths "
    "(4→32→64→128, chained) and the thumbnail's channels (R, mean G, B) are our choices. The paper's "
    "parameter count and FLOPs are not transcribed; compare only measured figures.",
    "Inputs whose half-resolution size is not a multiple of 16 are reflection-padded and the output cropped.",
    "The XCiT is timm's Xcit class (patch 16, embed 192, 4 heads, eta 1.0, tokens_norm, 2 class-attention "
    "blocks) at depth 4, randomly initialised; no ImageNet weights are downloaded.",
)


def _card(name: str, wb: bool, glob: bool, what: str) -> ModelCard:
    meta = (("wb",) if wb else ()) + (("thumb",) if glob else ())
    return ModelCard(
        name=name, family="crispnet", paper=_PAPER, url=_URL, input_kind="packed_rggb", metadata=meta,
        notes=((what,) if what else ()) + _NOTES, global_branch=glob,
        config={"n_res_blocks": 4, "xcit_depth": 4} if glob else {"n_res_blocks": 4},
    )


@register_model(_card("crispnet", True, True, ""))
def crispnet(n_res_blocks: int = 4, xcit_depth: int = 4) -> CRISPnet:
    return CRISPnet(True, True, n_res_blocks, xcit_depth)


@register_model(_card("crispnet-nowb", False, True, "Ablation: no white-balance branch."))
def crispnet_nowb(n_res_blocks: int = 4, xcit_depth: int = 4) -> CRISPnet:
    return CRISPnet(False, True, n_res_blocks, xcit_depth)


@register_model(_card("crispnet-noglobal", True, False, "Ablation: no global-semantics (XCiT) branch."))
def crispnet_noglobal(n_res_blocks: int = 4) -> CRISPnet:
    return CRISPnet(True, False, n_res_blocks)


@register_model(_card("unet-resbottleneck", False, False,
                      "Ablation: neither branch; the plain UNet with a residual bottleneck."))
def unet_resbottleneck(n_res_blocks: int = 4) -> CRISPnet:
    return CRISPnet(False, False, n_res_blocks)
