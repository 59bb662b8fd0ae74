"""``unet``: a single-stage UNet of CameraNet's Restore-Net configuration trained straight to sRGB.

This is CameraNet's one-stage ablation (the same network as Restore-Net, with the sRGB target
instead of the linear one), and the usual "UNet on packed raw" baseline of the field
(cf. Chen et al., "Learning to See in the Dark", CVPR 2018, whose UNet it resembles).

References:
    Z. Liang, J. Cai, Z. Cao, L. Zhang, "CameraNet: A Two-Stage Framework for Effective Camera ISP
    Learning", IEEE TIP 30, 2021 (one-stage ablation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from isp_bench.models._common import IspModel
from isp_bench.models._registry import ModelCard, register_model
from isp_bench.models.cameranet import CameraNetUNet, _PAPER, _URL


class UNet(IspModel):
    """Packed raw B×4×h×w → sRGB B×3×2h×2w through one Restore-Net-shaped UNet."""

    input_kind = "packed_rggb"

    def __init__(self, start: int = 32):
        super().__init__()
        self.net = CameraNetUNet(4, 12, start=start)

    def render(self, batch) -> torch.Tensor:
        return F.pixel_shuffle(self.net(self.input_tensor(batch)), 2)


@register_model(ModelCard(
    name="unet",
    family="unet",
    paper=_PAPER + " (one-stage ablation)",
    url=_URL,
    input_kind="packed_rggb",
    notes=("Same layers as CameraNet's Restore-Net (released code), trained to sRGB in one stage.",),
    config={"start": 32},
))
def unet(start: int = 32) -> UNet:
    return UNet(start=start)
