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
        make, model: EXIF/TIFF Make (271) and Model (272); unique_camera_model: DNG UniqueCameraModel (50708).
        camera_name, camera_name_source: derived, see :func:`camera_name`.
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
    camera_name: str | None = field(init=False, default=None)
    camera_name_source: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.camera_name, self.camera_name_source = camera_name(self.make, self.model, self.unique_camera_model)

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


def camera_name(make: str | None, model: str | None,
                unique_camera_model: str | None = None) -> tuple[str | None, str | None]:
    """The camera's name and the tag(s) it came from: ``(name, source)``.

    Make and Model (TIFF tags 271/272) when the file has either ('Canon' + 'Canon EOS 350D' →
    'Canon EOS 350D'; 'Sony' + 'ILCE-7' → 'Sony ILCE-7'), source ``"Make+Model"``, ``"Make"`` or
    ``"Model"``; otherwise the DNG UniqueCameraModel (tag 50708, which every DNG must carry, and
    which DNG readers such as dcraw/LibRaw fall back to), source ``"UniqueCameraModel"``;
    ``(None, None)`` when the file names no camera.
    """
    if make or model:
        if make and model and model.lower().startswith(make.split()[0].lower()):
            return model, "Make+Model"
        return " ".join(filter(None, [make, model])), "+".join(n for n, v in (("Make", make), ("Model", model)) if v)
    if unique_camera_model:
        return unique_camera_model, "UniqueCameraModel"
    return None, None
