"""RawCapture: what one raw file is, independent of its container (DESIGN §3)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from isp_bench.raw.cfa import normalize as _normalize
from isp_bench.raw.cfa import pack_rggb as _pack_rggb


@dataclass
class RawCapture:
    """Pixels and capture metadata of one raw file.

    Reading never guesses: every field the file does not carry is ``None``.

    Attributes:
        mosaic: 2-D uint16, the visible sensor area, no black subtraction.
        cfa: ``RGGB``, ``GRBG``, ``GBRG``, ``BGGR`` (phase of ``mosaic``'s top-left 2×2), or ``XTRANS``.
        black_level: four values, one per 2×2 CFA position of ``mosaic`` (row-major).
        white_level: saturation level in raw units.
        wb_as_shot: as-shot white-balance multipliers (R, G, B) normalised to G = 1.
        color_matrix: camera RGB → CIE XYZ (3×3), the inverse of the DNG ColorMatrix, for the
            illuminant ``color_matrix_illuminant`` (EXIF LightSource code, 21 = D65, 17 = A).
        xyz_to_camera: the matrix as stored in the file (DNG ColorMatrix1), XYZ → camera.
        color_matrix2, color_matrix2_illuminant: the DNG's second calibration, if present.
        noise_profile: DNG NoiseProfile, a flat tuple (S0, O0, S1, O1, …) with variance
            ``S·x + O`` for a signal ``x`` normalised to [0, 1].
        orientation: EXIF Orientation 1..8.
        default_crop: (top, left, height, width) of the DNG DefaultCrop inside ``mosaic``.
        visible_margins: (top, left) of the visible area inside the full sensor readout.
    """

    mosaic: np.ndarray
    cfa: str
    black_level: tuple[float, float, float, float]
    white_level: float
    wb_as_shot: tuple[float, float, float] | None = None
    color_matrix: tuple[tuple[float, ...], ...] | None = None
    color_matrix_illuminant: int | None = None
    xyz_to_camera: tuple[tuple[float, ...], ...] | None = None
    color_matrix2: tuple[tuple[float, ...], ...] | None = None
    color_matrix2_illuminant: int | None = None
    noise_profile: tuple[float, ...] | None = None
    orientation: int | None = None
    default_crop: tuple[int, int, int, int] | None = None
    visible_margins: tuple[int, int] | None = None
    make: str | None = None
    model: str | None = None
    unique_camera_model: str | None = None
    iso: float | None = None
    exposure_s: float | None = None
    fnumber: float | None = None
    focal_length_mm: float | None = None
    datetime: str | None = None
    container: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def height(self) -> int:
        return int(self.mosaic.shape[0])

    @property
    def width(self) -> int:
        return int(self.mosaic.shape[1])

    def normalized(self, *, clip: bool = False) -> np.ndarray:
        """``(mosaic - black) / (white - black)`` as float32 (see :func:`isp_bench.raw.normalize`)."""
        return _normalize(self.mosaic, self.black_level, self.white_level, clip=clip)

    def packed(self, *, clip: bool = False):
        """Normalised mosaic packed to R, Gr, Gb, B; returns ``(packed, crop)``."""
        return _pack_rggb(self.normalized(clip=clip), self.cfa)

    def metadata(self) -> dict[str, Any]:
        """Every field except the pixels, as plain Python values."""
        meta = {k: getattr(self, k) for k in self.__dataclass_fields__}
        meta.pop("mosaic")
        meta["height"], meta["width"] = self.height, self.width
        return meta
