"""CameraNet (Liang, Cai, Cao & Zhang, IEEE TIP 2021), the configuration of the authors' released code.

Two 5-level UNets (channels 32, 64, 128, 256, 512; leaky ReLU 0.2; reflection padding; 3×3
max-pool stride 2 with TensorFlow ``SAME`` padding; 2×2 transposed convolution up, bias-free,
concatenated with the skip; a 1×1 head to 12 channels and depth-to-space ×2):

- **Restore-Net** takes the packed raw (4 channels at half resolution) and outputs linear RGB at
  full resolution (denoising, demosaicking, white balance, colour correction).
- **Enhance-Net** takes ``max(x, 1e-4)^(1/2.2)`` of Restore-Net's output, space-to-depth ×2
  (12 channels), with dilations 1, 2, 2, 4, 8 per level, residual blocks, and a global branch: the
  spatial mean of the bottleneck goes through FC 512→1024 (leaky ReLU) → FC 1024→1024, whose two
  halves scale and shift the bottleneck features channel-wise. It outputs sRGB.

Every level has three 3×3 convolutions: an entry conv, then one block of two convs (the second
without activation) closed by the activation, with a residual connection in Enhance-Net. The
global mean is taken over the whole frame, so tiled inference computes it once per frame.

References:
    Z. Liang, J. Cai, Z. Cao, L. Zhang, "CameraNet: A Two-Stage Framework for Effective Camera ISP
    Learning", IEEE Transactions on Image Processing 30, 2021. arXiv:1908.01481.
    Code: https://github.com/zhetongliang/CameraNet_official (TensorFlow, ``U_net2``).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from isp_bench.models._common import IspModel, max_pool_same, reflect_pad, run_local
from isp_bench.models._registry import ModelCard, register_model

_PAPER = ("Z. Liang, J. Cai, Z. Cao, L. Zhang, \"CameraNet: A Two-Stage Framework for Effective Camera "
          "ISP Learning\", IEEE TIP 30, 2021")
_URL = "https://arxiv.org/abs/1908.01481"
_CODE = "https://github.com/zhetongliang/CameraNet_official"


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2)


class _Conv(nn.Module):
    """3×3 conv with reflection padding equal to its dilation."""

    def __init__(self, cin: int, cout: int, dilation: int = 1):
        super().__init__()
        self.dilation = dilation
        self.conv = nn.Conv2d(cin, cout, 3, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(reflect_pad(x, self.dilation))


class _Level(nn.Module):
    """Entry conv (act) → conv (dilated, act) → conv (no act) → [+ residual] → act."""

    def __init__(self, cin: int, c: int, dilation: int, residual: bool, second_dilation: int):
        super().__init__()
        self.entry = _Conv(cin, c)
        self.conv_a = _Conv(c, c, dilation)
        self.conv_b = _Conv(c, c, second_dilation)
        self.residual = residual

    def forward(self, x: torch.Tensor, final_act: bool = True) -> torch.Tensor:
        x = _lrelu(self.entry(x))
        y = self.conv_b(_lrelu(self.conv_a(x)))
        if self.residual:
            y = y + x
        return _lrelu(y) if final_act else y


class CameraNetUNet(nn.Module):
    """The ``U_net2`` of CameraNet's released code (4 down-sampling levels + bottleneck).

    Args:
        in_ch, out_ch: input and head channels.
        start: channels of the first level (doubled at each level).
        dilations: one per level, bottleneck last (Restore-Net 1s, Enhance-Net 1, 2, 2, 4, 8).
        residual: residual connections in the level blocks (Enhance-Net).
        global_branch: the 512→1024→1024 global scale-and-shift (Enhance-Net).
        global_hidden: width of the global MLP (released code: 2 × bottleneck channels).
    """

    def __init__(self, in_ch: int, out_ch: int = 12, start: int = 32, levels: int = 5,
                 dilations: Sequence[int] = (1, 1, 1, 1, 1), residual: bool = False,
                 global_branch: bool = False, global_hidden: int | None = None):
        super().__init__()
        ch = [start * 2**i for i in range(levels)]
        self.ch = ch
        self.residual = residual
        down = len(ch) - 1
        self.encoder = nn.ModuleList(
            # released code: encoder blocks dilate both convs; bottleneck and decoder only the first
            _Level(in_ch if i == 0 else ch[i - 1], ch[i], dilations[i], residual, dilations[i]) for i in range(down)
        )
        self.bottleneck = _Level(ch[down - 1], ch[down], dilations[down], residual, 1)
        self.global_fc = None
        if global_branch:
            hidden = global_hidden or 2 * ch[down]
            self.global_fc = nn.Sequential(nn.Linear(ch[down], hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 2 * ch[down]))
        self.up = nn.ModuleList(nn.ConvTranspose2d(ch[i + 1], ch[i], 2, stride=2, bias=False) for i in reversed(range(down)))
        self.decoder = nn.ModuleList(_Level(2 * ch[i], ch[i], dilations[i], residual, 1) for i in reversed(range(down)))
        self.head = nn.Conv2d(ch[0], out_ch, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The released code's initialisation: slim's Xavier-uniform weights and zero biases for
        convolutions and FC layers, truncated normal (std 0.001) for the transposed convolutions."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.ConvTranspose2d):
                nn.init.trunc_normal_(m.weight, std=0.001, a=-0.002, b=0.002)

    def encode(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        skips = []
        for level in self.encoder:
            x = level(x)
            skips.append(x)
            x = max_pool_same(x, 3, 2)
        return skips, x

    def bottleneck_entry(self, pooled: torch.Tensor) -> torch.Tensor:
        """The bottleneck's entry conv output, whose spatial mean feeds the global branch."""
        return _lrelu(self.bottleneck.entry(pooled))

    def global_params(self, mean: torch.Tensor) -> torch.Tensor:
        return self.global_fc(mean)

    def decode(self, skips: list[torch.Tensor], pooled: torch.Tensor, global_vec: torch.Tensor | None) -> torch.Tensor:
        b = self.bottleneck
        x = entry = _lrelu(b.entry(pooled))
        y = b.conv_b(_lrelu(b.conv_a(x)))
        x = _lrelu(y + x) if self.residual else _lrelu(y)
        if self.global_fc is not None:
            if global_vec is None:
                global_vec = self.global_params(entry.mean(dim=(2, 3)))
            c = x.shape[1]
            x = _lrelu(x * global_vec[:, :c, None, None] + global_vec[:, c:, None, None])
        n = len(self.decoder)
        for i, (up, level) in enumerate(zip(self.up, self.decoder)):
            skip = skips[n - 1 - i]
            x = up(x)[..., : skip.shape[-2], : skip.shape[-1]]
            # released code: no activation after the last block of the last level
            x = level(torch.cat([x, skip], dim=1), final_act=i < n - 1)
        return self.head(x)

    def forward(self, x: torch.Tensor, global_vec: torch.Tensor | None = None) -> torch.Tensor:
        skips, pooled = self.encode(x)
        return self.decode(skips, pooled, global_vec)


class CameraNet(IspModel):
    """Restore-Net (packed raw → linear RGB) followed by Enhance-Net (→ sRGB).

    :meth:`restore` and :meth:`enhance` expose the two stages for the paper's stage-wise training
    (Restore-Net against the linear ground truth, Enhance-Net against sRGB, then jointly).
    """

    input_kind = "packed_rggb"

    def __init__(self, global_hidden: int = 1024):
        super().__init__()
        self.restore_net = CameraNetUNet(4, 12)
        self.enhance_net = CameraNetUNet(12, 12, dilations=(1, 2, 2, 4, 8), residual=True,
                                         global_branch=True, global_hidden=global_hidden)

    def restore(self, raw: torch.Tensor) -> torch.Tensor:
        """Packed raw B×4×h×w → linear RGB B×3×2h×2w."""
        return F.pixel_shuffle(self.restore_net(raw), 2)

    @staticmethod
    def _enhance_input(linear: torch.Tensor) -> torch.Tensor:
        return F.pixel_unshuffle(torch.clamp_min(linear, 1e-4) ** (1 / 2.2), 2)

    def enhance(self, linear: torch.Tensor, global_vec: torch.Tensor | None = None) -> torch.Tensor:
        """Linear RGB B×3×H×W (H, W even) → sRGB B×3×H×W."""
        return F.pixel_shuffle(self.enhance_net(self._enhance_input(linear), global_vec), 2)

    def _enhance_bottleneck(self, linear: torch.Tensor) -> torch.Tensor:
        """Enhance-Net's bottleneck entry features (1/32 of ``linear``'s resolution), whose mean feeds the
        global branch."""
        net = self.enhance_net
        _, pooled = net.encode(self._enhance_input(linear))
        return net.bottleneck_entry(pooled)

    def compute_global(self, batch, tiler=None):
        raw = self.input_tensor(batch)
        feat = run_local(lambda x: self._enhance_bottleneck(self.restore(x)), raw, tiler, scale=1 / 16,
                         align=self.tile_align)
        return {"cameranet_global": self.enhance_net.global_params(feat.mean(dim=(2, 3)))}

    def render_frame(self, batch, tiler) -> torch.Tensor:
        """Restore-Net once per frame: one tiled pass stitches its linear image (full resolution, 3
        channels), then Enhance-Net maps over tiles of that image covering what the raw's tiles cover, its
        encoder for the frame's global mean, then all of it. The generic path (:meth:`compute_global`,
        then every tile) runs Restore-Net twice, and Enhance-Net's tiles then see a Restore-Net output cut
        off at the tile's edge rather than the frame's."""
        linear = tiler(self.restore, self.input_tensor(batch), scale=2.0, align=self.tile_align)
        align = 2 * self.tile_align  # in full-resolution pixels
        feat = tiler(self._enhance_bottleneck, linear, scale=1 / align, align=align, resolution=2)
        g = self.enhance_net.global_params(feat.mean(dim=(2, 3)))
        return tiler(lambda tiles: self.enhance(tiles, g.repeat(tiles.shape[0] // g.shape[0], 1)), linear,
                     align=align, resolution=2)

    def render(self, batch) -> torch.Tensor:
        raw = self.input_tensor(batch)
        g = batch.get("global")
        return self.enhance(self.restore(raw), None if g is None else g["cameranet_global"])


_NOTES = (
    "Released-code configuration (" + _CODE + ": U_net2 in my_model_pool.py, Train_sid.py): 24.95 M parameters and 1 640.3 "
    "GMACs at 4032×3024, i.e. 3 280.6 GFLOPs in Table IV's convention of 2 FLOPs per MAC (the convention "
    "checked on DeepISP-Net, matched to 0.02 %). Table IV prints 1.58 M parameters and 26.1 GFLOPs (0.8 %) more. "
    "Element-wise work our counter leaves out (a bias add and a leaky ReLU on each of the 2.67 G convolution "
    "outputs) explains at most ~5 GFLOPs, and extra weights in the global MLP cost one MAC per parameter per "
    "frame, so the rest (~21 GFLOPs) points to ~0.9 M extra weights in convolutions at the bottleneck resolution "
    "(126×95 positions); the paper gives no layer table to confirm it. `global_hidden` lets you explore it.",
    "Max-pooling uses TensorFlow SAME padding (extra row/column at the bottom/right) and transposed "
    "convolutions are cropped to the skip's size, as tf.nn.conv2d_transpose with output_shape does, so "
    "any input size works.",
    "Pixel (un)shuffle uses PyTorch's channel order, which differs from tf.depth_to_space; irrelevant "
    "when training from scratch, but TensorFlow checkpoints would need their channels permuted.",
    "The global branch averages over the whole frame; infer_full computes it once per frame from tiles, over "
    "Restore-Net's output stitched from one tiled pass (Restore-Net runs once per frame).",
)


@register_model(ModelCard(
    name="cameranet",
    family="cameranet",
    paper=_PAPER,
    url=_URL,
    input_kind="packed_rggb",
    metadata=(),
    notes=_NOTES,
    global_branch=True,
    config={"global_hidden": 1024},
))
def cameranet(global_hidden: int = 1024) -> CameraNet:
    return CameraNet(global_hidden=global_hidden)
