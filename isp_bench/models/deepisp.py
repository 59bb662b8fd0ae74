"""DeepISP (Schwartz, Giryes & Bronstein, IEEE TIP 2019).

Input: bilinear-demosaiced linear camera RGB (``batch['rgb']``, B×3×H×W), as in the paper.

Low-level stage: ``N_ll`` 3×3 convolutions with reflection padding. Every layer outputs 64
channels: 61 ReLU *features* and 3 tanh *residual* channels added to the running image estimate
(initialised to the input); the next layer takes ``[image, features]`` (3 + 61 = 64 channels).

High-level stage: ``N_hl`` × (3×3 conv stride 2 → ReLU → 2×2 max-pool) on the low-level stage's
64-channel output ``[image, features]``, global mean pool, and a fully connected layer to 30 values
forming a 3×10 matrix ``W`` applied per pixel to the quadratic terms
``[r, g, b, r², rg, rb, g², gb, b², 1]`` of the low-level image (initialised to the identity on the
linear terms).

References:
    E. Schwartz, R. Giryes, A. M. Bronstein, "DeepISP: Toward Learning an End-to-End Image
    Processing Pipeline", IEEE Transactions on Image Processing 28(2), 2019. arXiv:1801.06724.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from isp_bench.models._common import IspModel, mirror_border, reflect_pad, run_local
from isp_bench.models._registry import ModelCard, register_model

_PAPER = ("E. Schwartz, R. Giryes, A. M. Bronstein, \"DeepISP: Toward Learning an End-to-End Image "
          "Processing Pipeline\", IEEE TIP 28(2), 2019")
_URL = "https://arxiv.org/abs/1801.06724"


class _LowLevelLayer(nn.Module):
    def __init__(self, in_ch: int, width: int = 64, residual: int = 3):
        super().__init__()
        self.residual = residual
        self.conv = nn.Conv2d(in_ch, width, 3)
        # The residual (tanh) channels start at zero: the untrained low-level stage passes the image
        # through unchanged, so the head's initial affine fit (fitted input → target) applies to what
        # it receives, and 14 random residuals do not push the image out of range.
        with torch.no_grad():
            self.conv.weight[-residual:].zero_()
            self.conv.bias[-residual:].zero_()

    def forward(self, x: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.conv(reflect_pad(x, 1))
        feats = F.relu(y[:, : -self.residual])
        image = image + torch.tanh(y[:, -self.residual :])
        return feats, image


class LowLevelStage(nn.Module):
    """``n_layers`` 61+3 layers; returns (features B×61×H×W, image B×3×H×W)."""

    def __init__(self, n_layers: int = 15, width: int = 64):
        super().__init__()
        self.layers = nn.ModuleList(
            [_LowLevelLayer(3 if i == 0 else width, width) for i in range(n_layers)]
        )

    def forward(self, rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not torch.is_grad_enabled() and min(rgb.shape[-2:]) >= 2 and len(self.layers) > 1:
            return self._forward_in_padded_buffers(rgb)
        return self._forward_concatenated(rgb)

    def _forward_concatenated(self, rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The training path: each layer's input is ``[image, features]`` concatenated, padded by the layer."""
        image, x = rgb, rgb
        feats = rgb
        for layer in self.layers:
            feats, image = layer(x, image)
            # the residual image stays float32; the next layer's input takes the features' (autocast) type,
            # or autocast's cat would widen all 64 channels to float32 at full resolution
            x = torch.cat([image.to(feats.dtype), feats], dim=1)
        return feats, image

    def _forward_in_padded_buffers(self, rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inference: the same values as :meth:`forward`, with each layer's input ``[image, features]``
        written straight into the inside of one reflection-padded buffer whose 1-pixel border is then
        mirrored in place (the next layer's output is a new tensor, so the buffer is free again once the
        convolution has read it). The convolutions read the same padded input; what goes is a padded copy
        and a concatenated copy of 64 full-resolution channels per layer, the memory traffic that
        dominates a 12 MP frame. Each convolution emits its channels as ``[residual, features]`` (its weight's
        and bias's rows reordered: every output channel is the same sum as before), so that the ReLU of its
        whole output goes into the inside in one pass over whole pixels, channels in place, and the image then
        takes the residual channels' place: a ReLU of the 61 feature channels alone, into the inside's 61 after
        the image, was a strided pass that PyTorch's element-wise kernel does not vectorise (52 ms of a tiled
        12 MP frame's GPU kernels on an H200, ``benchmarks/train.py --inference-only``)."""
        r = self.layers[0].residual

        def conv(layer: _LowLevelLayer, x: torch.Tensor) -> torch.Tensor:
            """The layer's convolution module with its rows reordered (its hooks, the MAC counter's, still run)."""
            reordered = {name: torch.cat([p[-r:], p[:-r]]) for name, p in layer.conv.named_parameters()}
            return torch.func.functional_call(layer.conv, reordered, (x,))

        first, *rest = self.layers
        y = conv(first, reflect_pad(rgb, 1))
        image = rgb + torch.tanh(y[:, :r])
        b, c, h, w = y.shape
        layout = torch.channels_last if y.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        padded = torch.empty(b, c, h + 2, w + 2, dtype=y.dtype, device=y.device, memory_format=layout)
        inside = padded[:, :, 1:-1, 1:-1]
        for layer in rest:
            torch.clamp_min(y, 0, out=inside)
            inside[:, :r] = image  # over the residual channels' ReLU: the input [image, features]
            y = conv(layer, mirror_border(padded, 1, 1, 1, 1))
            image = image + torch.tanh(y[:, :r])
        return F.relu(y[:, r:]), image


class QuadraticColorTransform(nn.Module):
    """Apply a per-image 3×10 matrix to ``[r, g, b, r², rg, rb, g², gb, b², 1]`` at every pixel."""

    @staticmethod
    def terms(image: torch.Tensor) -> torch.Tensor:
        r, g, b = image[:, 0:1], image[:, 1:2], image[:, 2:3]
        return torch.cat([r, g, b, r * r, r * g, r * b, g * g, g * b, b * b, torch.ones_like(r)], dim=1)

    def forward(self, image: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bij,bjhw->bihw", w, self.terms(image))

    def extra_macs(self, inputs, output) -> int:
        return output.numel() * 10


class DeepISP(IspModel):
    """DeepISP full pipeline (low-level + high-level stages).

    Args:
        n_ll: number of low-level layers, counting the first conv (paper: 15 for the full ISP).
        n_hl: number of high-level conv/pool stages (paper: 3).
        width: channels per low-level layer (61 features + 3 residual).
        hl_width: channels of the high-level convolutions.
    """

    input_kind = "bilinear_rgb"
    tile_align = 4
    data_init = "deepisp_affine_fit"
    """The recipe ``init`` that :meth:`init_from_data` implements (the trainer checks they agree)."""

    def __init__(self, n_ll: int = 15, n_hl: int = 3, width: int = 64, hl_width: int = 64):
        super().__init__()
        self.low_level = LowLevelStage(n_ll, width)
        convs = []
        for i in range(n_hl):
            convs.append(nn.Conv2d(width if i == 0 else hl_width, hl_width, 3, stride=2))
        self.hl_convs = nn.ModuleList(convs)
        self.fc = nn.Linear(hl_width, 30)
        nn.init.zeros_(self.fc.weight)
        with torch.no_grad():
            self.fc.bias.copy_(torch.cat([torch.eye(3), torch.zeros(3, 7)], dim=1).reshape(30))
        self.transform = QuadraticColorTransform()

    @torch.no_grad()
    def init_from_data(self, frames: Sequence[dict[str, Any]], max_pixels: int = 200_000) -> None:
        """DeepISP's head initialisation: ``W``'s linear and constant terms become the average over the
        training frames of the affine least-squares fit ``target ≈ A·[r, g, b, 1]`` of the bilinear input
        ``rgb`` to the sRGB ``target`` (at most about ``max_pixels`` evenly strided pixels per frame); the
        quadratic terms start at zero. ``frames``: whole-frame samples with ``rgb`` and ``target``."""
        fits = []
        for i in range(len(frames)):
            sample = frames[i]
            x = sample["rgb"].reshape(3, -1).T.double()
            y = sample["target"].reshape(3, -1).T.double()
            stride = max(1, x.shape[0] // max_pixels)
            x, y = x[::stride], y[::stride]
            design = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
            fits.append(torch.linalg.lstsq(design, y).solution.T)
        bias = self.fc.bias.view(3, 10)
        fit = torch.stack(fits).mean(0).to(bias)
        bias.zero_()
        bias[:, :3], bias[:, 9] = fit[:, :3], fit[:, 3]

    def _hl_block(self, i: int, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.hl_convs[i](reflect_pad(x, 1)))
        return F.max_pool2d(x, 2, ceil_mode=False) if min(x.shape[-2:]) >= 2 else x

    def _image_and_first_hl(self, rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The low-level stage's image and the first high-level block over its output (features and image;
        the image in the features' autocast type)."""
        feats, image = self.low_level(rgb)
        return image, self._hl_block(0, torch.cat([image.to(feats.dtype), feats], dim=1))

    def _high_level(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(1, len(self.hl_convs)):
            x = self._hl_block(i, x)
        return self.fc(x.mean(dim=(2, 3))).view(-1, 3, 10)

    def compute_global(self, batch, tiler=None):
        rgb = self.input_tensor(batch)
        first_hl = run_local(lambda x: self._image_and_first_hl(x)[1], rgb, tiler, scale=0.25, align=4)
        return {"deepisp_w": self._high_level(first_hl)}

    def render_frame(self, batch, tiler) -> torch.Tensor:
        """One tiled pass of the low-level stage gives both the image (full resolution, 3 channels) and
        the first high-level block (a quarter, 64 channels); the frame's transform comes from the latter
        and applies to the former pixel by pixel: the low-level stage, nearly all of DeepISP's work, runs
        once per frame, not twice."""
        image, first_hl = tiler(self._image_and_first_hl, self.input_tensor(batch), scale=(1.0, 0.25),
                                align=self.tile_align)
        return self.transform(image, self._high_level(first_hl))

    def render(self, batch) -> torch.Tensor:
        rgb = self.input_tensor(batch)
        g = batch.get("global")
        if g is None:  # whole frame in one pass: the low-level output feeds both stages
            image, first_hl = self._image_and_first_hl(rgb)
            return self.transform(image, self._high_level(first_hl))
        return self.transform(self.low_level(rgb)[1], g["deepisp_w"])


class DeepISPLowLevel(IspModel):
    """DeepISP's low-level stage alone, the paper's joint demosaicking + denoising network
    (output: the image estimate, linear RGB, not display sRGB)."""

    input_kind = "bilinear_rgb"
    tile_align = 1

    def __init__(self, n_ll: int = 20, width: int = 64):
        super().__init__()
        self.low_level = LowLevelStage(n_ll, width)

    def render(self, batch) -> torch.Tensor:
        return self.low_level(self.input_tensor(batch))[1]


_NOTE_HL = (
    "The high-level stage reads the low-level stage's full 64-channel output [image, 61 features]: "
    "631,518 parameters and 6.434 T MACs (12,868 GFLOPs at 2 FLOPs per MAC) at 4032×3024. The DeepISP paper "
    "prints neither figure; the reported ones are CameraNet Table IV's measurement of the CameraNet authors' "
    "re-implementation (DeepISP-Net), whose GFLOPs our count matches to 0.02 % (the 1.98 GFLOPs left are "
    "per-pixel element-wise work we do not count). Reading only the 61 features gives 629,790 parameters "
    "(Table IV's 0.629 M) but 12,857 GFLOPs; Table IV's two figures cannot both hold, we follow the compute figure."
)


@register_model(ModelCard(
    name="deepisp",
    family="deepisp",
    paper=_PAPER,
    url=_URL,
    input_kind="bilinear_rgb",
    metadata=(),
    notes=(
        _NOTE_HL,
        "High-level convolutions use reflection padding like the low-level ones (the paper does not say).",
        "W is initialised to the identity on the linear terms (FC weight 0, bias = [I | 0]).",
        "Loss (L1 + MS-SSIM in Lab) and training recipe live in isp_bench.train, not here.",
    ),
    global_branch=True,
    config={"n_ll": 15, "n_hl": 3},
))
def deepisp(n_ll: int = 15, n_hl: int = 3) -> DeepISP:
    return DeepISP(n_ll=n_ll, n_hl=n_hl)


@register_model(ModelCard(
    name="deepisp-lowlevel",
    family="deepisp",
    paper=_PAPER,
    url=_URL,
    input_kind="bilinear_rgb",
    notes=("The paper's joint demosaicking + denoising variant: low-level stage only, N_ll = 20. Its output "
           "is the denoised linear RGB estimate, not display sRGB.",),
    config={"n_ll": 20},
))
def deepisp_lowlevel(n_ll: int = 20) -> DeepISPLowLevel:
    return DeepISPLowLevel(n_ll=n_ll)
