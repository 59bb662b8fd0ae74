"""``classic``: what any raw converter does, with no learning.

1. Black level and white level: already applied by :func:`isp_bench.raw.normalize` / packing.
2. White balance from metadata (``batch['wb']``, as-shot multipliers), then clipping to [0, 1]
   (dcraw's default highlight clipping).
3. Demosaicking: bilinear (:func:`isp_bench.raw.demosaic_bilinear`), Malvar-He-Cutler 2004
   (``colour_demosaicing.demosaicing_CFA_Bayer_Malvar2004``), or a learned demosaicker (``djdd``).
4. Camera RGB → XYZ with the file's colour matrix (``batch['color_matrix']``, camera→XYZ as in
   :class:`~isp_bench.raw.RawCapture`), XYZ → linear sRGB (colour-science's sRGB colourspace),
   with rows normalised so that a white-balanced neutral stays neutral (dcraw's ``rgb_cam``
   convention, which stands in for chromatic adaptation).
5. The sRGB transfer curve (IEC 61966-2-1).

:func:`render_capture` runs it on a :class:`~isp_bench.raw.RawCapture`; :class:`ClassicISP` is the
registry model (``forward(batch)``), differentiable except for the NumPy demosaickers. The steps
themselves are functions of :mod:`isp_bench.develop` (which the data stage uses for restoration
targets without importing a model).

References:
    H. S. Malvar, L.-W. He, R. Cutler, "High-quality linear interpolation for demosaicing of
    Bayer-patterned color images", ICASSP 2004.
    IEC 61966-2-1:1999, sRGB. D. Coffin, dcraw.c (``cam_xyz_coeff``).
"""

from __future__ import annotations

import numpy as np
import torch

from isp_bench.colorimetry import srgb_decode_torch, srgb_encode_torch
from isp_bench.develop import NUMPY_DEMOSAICKERS, develop_srgb, numpy_demosaic
from isp_bench.models._common import IspModel, require
from isp_bench.models._registry import ModelCard, ModelError, register_model

DEMOSAICKERS = tuple(NUMPY_DEMOSAICKERS)


class ClassicISP(IspModel):
    """Classic pipeline. ``demosaic`` is ``'bilinear'``, ``'malvar'`` or a torch module mapping an
    RGGB mosaic B×1×H×W in sRGB-encoded values to B×3×H×W (see :mod:`isp_bench.models.djdd`)."""

    input_kind = "packed_rggb"
    tile_align = 1

    def __init__(self, demosaic: str | torch.nn.Module = "malvar"):
        super().__init__()
        if isinstance(demosaic, str):
            if demosaic not in NUMPY_DEMOSAICKERS:
                raise ModelError(
                    f"demosaic {demosaic!r} is not one of {', '.join(DEMOSAICKERS)} (or use the 'djdd' model)")
            self._np_demosaic = numpy_demosaic(NUMPY_DEMOSAICKERS[demosaic])
            self.demosaicker = None
            self.demosaic_name = demosaic
        else:
            self._np_demosaic = None
            self.demosaicker = demosaic
            self.demosaic_name = type(demosaic).__name__

    def _demosaic_mosaic(self, mosaic: torch.Tensor) -> torch.Tensor:
        """White-balanced mosaic B×1×H×W → linear camera RGB B×3×H×W (a learned demosaicker works on
        sRGB-encoded values)."""
        if self.demosaicker is not None:
            return srgb_decode_torch(self.demosaicker(srgb_encode_torch(mosaic)), clamp=True)
        return self._np_demosaic(mosaic)

    def render(self, batch) -> torch.Tensor:
        raw = self.input_tensor(batch)
        wb = require(batch, "wb", "classic", "B×4 white balance, R, Gr, Gb, B")
        cm = require(batch, "color_matrix", "classic", "B×3×3 camera→XYZ colour matrix")
        b, _, h, w = raw.shape
        if raw.device.type == "meta":  # shape-only pass (MAC counting)
            return self.demosaicker(torch.empty(b, 1, 2 * h, 2 * w, device="meta")) if self.demosaicker else \
                torch.empty(b, 3, 2 * h, 2 * w, device="meta")
        return develop_srgb(raw, wb, cm, self._demosaic_mosaic)


def render_capture(capture, demosaic: str = "malvar"):
    """Classic rendering of a :class:`~isp_bench.raw.RawCapture` → (sRGB H×W×3 float32, CfaCrop).

    Uses the capture's black/white levels, ``wb_as_shot`` and ``color_matrix``; raises
    :class:`ModelError` when the file does not carry them (reading never guesses).
    """
    from isp_bench.evaluate import batch_from_capture

    batch, crop = batch_from_capture(capture, require_color=True)
    model = ClassicISP(demosaic).eval()
    with torch.no_grad():
        out = model(batch)
    return out[0].permute(1, 2, 0).numpy().astype(np.float32), crop


@register_model(ModelCard(
    name="classic",
    family="classic",
    paper="Classic raw conversion: white balance, Malvar 2004 (or bilinear) demosaicking, colour matrix, sRGB curve",
    url="https://doi.org/10.1109/ICASSP.2004.1326587",
    input_kind="packed_rggb",
    metadata=("wb", "color_matrix"),
    notes=("No parameters. Camera→sRGB rows are normalised (dcraw's convention) instead of a Bradford "
           "adaptation from the matrix's calibration illuminant; no denoising, tone curve or sharpening.",
           "demosaic='bilinear' | 'malvar' (NumPy, via isp_bench.raw and colour-demosaicing)."),
    config={"demosaic": "malvar"},
))
def classic(demosaic: str = "malvar") -> ClassicISP:
    return ClassicISP(demosaic)
