"""Classic raw development as functions: white balance, demosaicking, camera → sRGB, the sRGB curve.

1. Black level and white level: already applied by :func:`isp_bench.raw.normalize` / packing.
2. White balance from metadata (as-shot multipliers R, Gr, Gb, B), then clipping to [0, 1]
   (dcraw's default highlight clipping).
3. Demosaicking: bilinear (:func:`isp_bench.raw.demosaic_bilinear`), Malvar-He-Cutler 2004
   (``colour_demosaicing.demosaicing_CFA_Bayer_Malvar2004``), or any callable on mosaics.
4. Camera RGB → XYZ with the file's colour matrix (camera→XYZ as in :class:`~isp_bench.raw.RawCapture`),
   XYZ → linear sRGB (:data:`isp_bench.colorimetry.XYZ_TO_SRGB`), with rows normalised so that a white-balanced
   neutral stays neutral (dcraw's ``rgb_cam`` convention, which stands in for chromatic adaptation).
5. The sRGB transfer curve (IEC 61966-2-1).

The registry model ``classic`` (:mod:`isp_bench.models.classic`) is these functions behind a model
interface; :func:`classic_linear_rgb` is the named preparation step that makes restoration
(linear) targets for pairs that ship only a finished JPEG (:mod:`isp_bench.data.cache`). This module
imports no model, so the data stage can use it.

References:
    H. S. Malvar, L.-W. He, R. Cutler, "High-quality linear interpolation for demosaicing of
    Bayer-patterned color images", ICASSP 2004.
    IEC 61966-2-1:1999, sRGB. D. Coffin, dcraw.c (``cam_xyz_coeff``).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from isp_bench.colorimetry import D65_WHITE_XYZ, XYZ_TO_SRGB, srgb_decode_torch, srgb_encode_torch
from isp_bench.raw import demosaic_bilinear

MosaicDemosaic = Callable[[torch.Tensor], torch.Tensor]
"""B×1×H×W white-balanced RGGB mosaic → B×3×H×W linear camera RGB."""


def camera_to_srgb_matrix(color_matrix: np.ndarray) -> np.ndarray:
    """White-balanced camera RGB → linear sRGB from a camera→XYZ matrix (dcraw's convention).

    The matrix applies to camera RGB *before* white balance, so the balanced neutral (1, 1, 1) is
    first taken back to the camera's response to D65 white, ``inverse(color_matrix) · XYZ(D65)``;
    rows are then normalised so that it lands exactly on sRGB white. (Normalising the rows of
    ``XYZ→sRGB · color_matrix`` alone, without that step, tints every colour but grey.)"""
    cm = np.asarray(color_matrix, dtype=np.float64)
    camera_white = np.linalg.solve(cm, D65_WHITE_XYZ)
    m = XYZ_TO_SRGB @ cm @ np.diag(camera_white / camera_white[1])
    return m / m.sum(axis=1, keepdims=True)


def _malvar(mosaic: np.ndarray) -> np.ndarray:
    from colour_demosaicing import demosaicing_CFA_Bayer_Malvar2004

    return np.asarray(demosaicing_CFA_Bayer_Malvar2004(mosaic, "RGGB"), dtype=np.float32)


NUMPY_DEMOSAICKERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "bilinear": lambda mosaic: demosaic_bilinear(mosaic, "RGGB"),
    "malvar": _malvar,
}
"""H×W RGGB mosaic → H×W×3 float32 camera RGB, by name."""


def numpy_demosaic(demosaic_hw: Callable[[np.ndarray], np.ndarray]) -> MosaicDemosaic:
    """A :data:`MosaicDemosaic` that runs a NumPy demosaicker (H×W → H×W×3) on every frame (not differentiable)."""

    def run(mosaic: torch.Tensor) -> torch.Tensor:
        frames = mosaic[:, 0].detach().cpu().numpy()
        return torch.from_numpy(np.stack([demosaic_hw(m) for m in frames])).permute(0, 3, 1, 2).to(mosaic)

    return run


def develop_srgb(raw: torch.Tensor, wb: torch.Tensor, color_matrix: torch.Tensor,
                 demosaic: MosaicDemosaic) -> torch.Tensor:
    """Steps 2–5 of the module docstring: packed raw B×4×h×w (normalised), white balance B×4
    (R, Gr, Gb, B), camera→XYZ matrices B×3×3 → display sRGB B×3×2h×2w (not clamped)."""
    b, _, h, w = raw.shape
    balanced = (raw * wb.to(raw)[:, :, None, None]).clamp(0.0, 1.0)
    mosaic = torch.zeros(b, 1, 2 * h, 2 * w, dtype=raw.dtype, device=raw.device)
    mosaic[:, 0, 0::2, 0::2], mosaic[:, 0, 0::2, 1::2] = balanced[:, 0], balanced[:, 1]
    mosaic[:, 0, 1::2, 0::2], mosaic[:, 0, 1::2, 1::2] = balanced[:, 2], balanced[:, 3]
    cam = demosaic(mosaic)
    mats = torch.from_numpy(np.stack([camera_to_srgb_matrix(c) for c in color_matrix.detach().cpu().numpy()])).to(raw)
    linear = torch.einsum("bij,bjhw->bihw", mats, cam)
    return srgb_encode_torch(linear)


def classic_linear_rgb(batch: dict[str, Any], demosaic: str = "malvar") -> torch.Tensor:
    """The classic pipeline's linear sRGB B×3×2h×2w in [0, 1] for a batch with ``raw``, ``wb`` and
    ``color_matrix`` (:mod:`isp_bench.batches`): its display sRGB, clamped and decoded — what
    CameraNet's authors made with dcraw as restoration targets for datasets without one."""
    with torch.no_grad():
        srgb = develop_srgb(batch["raw"], batch["wb"], batch["color_matrix"],
                            numpy_demosaic(NUMPY_DEMOSAICKERS[demosaic]))
        return srgb_decode_torch(srgb, clamp=True)
