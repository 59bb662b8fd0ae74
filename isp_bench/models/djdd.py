"""``djdd``: deep joint demosaicking and denoising (Gharbi, Chaurasia, Paris & Durand, SIGGRAPH Asia 2016),
with the trained Bayer weights shipped inside the ``demosaicnet`` PyPI package (``data/bayer.pth``).

The released network (the weights' architecture, which differs slightly from the paper's
figure): a learned 2×2 stride-2 "pack" convolution of the 3-channel masked mosaic, 15 valid 3×3
convolutions (64 channels, ReLU; the last outputs 128 = filters × masks, multiplied), a 1×1
convolution to 12 channels, a grouped 2×2 stride-2 transposed convolution to 3 channels at full
resolution, and a full-resolution stage (3×3 conv on [mosaic, upsampled], ReLU, 1×1 to RGB). It
was trained on sRGB-encoded images with a **GRBG** mosaic; :class:`BayerJDD` shifts our RGGB phase
to GRBG and pads with CFA-preserving reflection, so every output pixel has full context.

As a raw→sRGB model it is the classic pipeline (:mod:`isp_bench.models.classic`) with this
network as the demosaicker (applied in sRGB-encoded values, as it was trained).

The weights are read from the local file only (``weights=`` or the installed package); nothing
is downloaded, and ``demosaicnet`` itself is never imported.

References:
    M. Gharbi, G. Chaurasia, S. Paris, F. Durand, "Deep Joint Demosaicking and Denoising", ACM
    Transactions on Graphics 35(6), 2016. Weights: https://pypi.org/project/demosaicnet/.
"""

from __future__ import annotations

import importlib.util
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from isp_bench.models._common import reflect_pad
from isp_bench.models._registry import ModelCard, ModelError, register_model
from isp_bench.models.classic import ClassicISP
from isp_bench.raw import cfa_masks

_DEPTH, _WIDTH = 15, 64


def shipped_weights_path() -> Path:
    """``bayer.pth`` inside the installed ``demosaicnet`` package (located without importing it)."""
    spec = importlib.util.find_spec("demosaicnet")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "djdd weights not found: the 'demosaicnet' package is not installed. Run `pip install demosaicnet` "
            "(it ships data/bayer.pth), or pass weights=/path/to/bayer.pth"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "bayer.pth"
    if not path.is_file():
        raise ModelError(f"djdd weights not found at {path}; reinstall demosaicnet or pass weights=/path/to/bayer.pth")
    return path


class BayerJDD(nn.Module):
    """Gharbi et al.'s released Bayer network; ``forward`` maps an **RGGB** mosaic B×1×H×W (H, W even,
    sRGB-encoded values in [0, 1]) to RGB B×3×H×W."""

    def __init__(self, depth: int = _DEPTH, width: int = _WIDTH):
        super().__init__()
        self.width = width
        layers: OrderedDict[str, nn.Module] = OrderedDict(pack_mosaic=nn.Conv2d(3, 4, 2, stride=2))
        for i in range(depth):
            cin = 4 if i == 0 else width
            cout = 2 * width if i == depth - 1 else width
            layers[f"conv{i + 1}"] = nn.Conv2d(cin, cout, 3)
            layers[f"relu{i + 1}"] = nn.ReLU()
        # attribute names follow the keys of the shipped state dict
        self.main_processor = nn.Sequential(layers)
        self.residual_predictor = nn.Conv2d(width, 12, 1)
        self.upsampler = nn.ConvTranspose2d(12, 3, 2, stride=2, groups=3)
        self.fullres_processor = nn.Sequential(OrderedDict(
            post_conv=nn.Conv2d(6, width, 3), post_relu=nn.ReLU(), output=nn.Conv2d(width, 3, 1)))

    def load_weights(self, path: str | Path | None = None) -> "BayerJDD":
        path = Path(path) if path is not None else shipped_weights_path()
        if not path.is_file():
            raise ModelError(f"djdd weights file {path} does not exist; pass the path of demosaicnet's bayer.pth")
        state = torch.load(path, map_location="cpu", weights_only=True)
        try:
            self.load_state_dict(state)
        except RuntimeError as exc:
            raise ModelError(f"{path} is not demosaicnet's Bayer state dict: {exc}") from None
        return self

    def network(self, masked: torch.Tensor) -> torch.Tensor:
        """The released network on a 3-channel masked GRBG mosaic (valid convolutions, output
        smaller by ``2 × 31`` pixels)."""
        feats = self.main_processor(masked)
        filtered = feats[:, : self.width] * feats[:, self.width :]
        up = self.upsampler(self.residual_predictor(filtered))
        dh = (masked.shape[-2] - up.shape[-2]) // 2
        dw = (masked.shape[-1] - up.shape[-1]) // 2
        crop = masked[..., dh : dh + up.shape[-2], dw : dw + up.shape[-1]]
        return self.fullres_processor(torch.cat([crop, up], dim=1))

    def forward(self, mosaic: torch.Tensor) -> torch.Tensor:
        b, _, h, w = mosaic.shape
        if h % 2 or w % 2:
            raise ModelError(f"djdd needs an even-sized RGGB mosaic, got {h}×{w}")
        if mosaic.device.type == "meta":
            padded = torch.empty(b, 1, h + 64, w + 62, device="meta")
            mask = torch.empty(1, 3, h + 64, w + 62, device="meta")
        else:
            # pad in packed (2×2 block) units so the CFA phase is preserved, then drop one column on
            # each side: RGGB → GRBG, the phase the weights were trained on
            packed = torch.cat([mosaic[:, :, 0::2, 0::2], mosaic[:, :, 0::2, 1::2],
                                mosaic[:, :, 1::2, 0::2], mosaic[:, :, 1::2, 1::2]], dim=1)
            packed = reflect_pad(packed, 16)
            full = torch.zeros(b, 1, h + 64, w + 64, dtype=mosaic.dtype, device=mosaic.device)
            full[:, 0, 0::2, 0::2], full[:, 0, 0::2, 1::2] = packed[:, 0], packed[:, 1]
            full[:, 0, 1::2, 0::2], full[:, 0, 1::2, 1::2] = packed[:, 2], packed[:, 3]
            padded = full[..., 1:-1]
            mask = torch.from_numpy(cfa_masks(padded.shape[-2:], "GRBG")).permute(2, 0, 1)[None].to(mosaic)
        out = self.network(padded * mask)
        return out[..., 1 : h + 1, :w]


def djdd_demosaic(mosaic: torch.Tensor, weights: str | Path | None = None) -> torch.Tensor:
    """Demosaic an RGGB mosaic (B×1×H×W or H×W, sRGB-encoded) with the shipped weights."""
    net = BayerJDD().load_weights(weights).eval()
    x = mosaic if mosaic.ndim == 4 else mosaic[None, None]
    with torch.no_grad():
        out = net(x)
    return out if mosaic.ndim == 4 else out[0]


@register_model(ModelCard(
    name="djdd",
    family="djdd",
    paper=("M. Gharbi, G. Chaurasia, S. Paris, F. Durand, \"Deep Joint Demosaicking and Denoising\", "
           "ACM TOG 35(6) (SIGGRAPH Asia), 2016"),
    url="https://groups.csail.mit.edu/graphics/demosaicnet/",
    input_kind="packed_rggb",
    metadata=("wb", "color_matrix"),
    notes=("Pretrained: the noise-free Bayer weights shipped in demosaicnet (data/bayer.pth, 560,886 parameters); "
           "the network demosaics only, the rest is the classic pipeline (white balance, colour matrix, sRGB).",
           "Weights were trained on sRGB-encoded images, so demosaicking runs on the sRGB-encoded mosaic."),
    pretrained="demosaicnet PyPI package: demosaicnet/data/bayer.pth (local file, no download)",
    config={"pretrained": True, "weights": None},
))
def djdd(pretrained: bool = True, weights: str | None = None) -> ClassicISP:
    net = BayerJDD()
    if pretrained:
        net.load_weights(weights)
    return ClassicISP(net)
