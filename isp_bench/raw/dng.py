"""DNG files through tifffile: writing Bayer DNGs (fixtures, the synthetic camera) and reading the
DNG tags that rawpy does not expose.

Tag numbers and types follow the DNG specification 1.4 (Adobe, 2012). Metadata a DNG stores as
rationals round-trips to the precision of the rational encoding (denominator 10⁶).
"""

from __future__ import annotations

import datetime as _dt
import os
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import tifffile

from isp_bench.errors import ExifError, IspBenchError
from isp_bench.files import atomic_path
from isp_bench.raw.cfa import check_bayer

# EXIF LightSource codes used as DNG CalibrationIlluminant values.
ILLUMINANTS = {"A": 17, "B": 18, "C": 19, "D55": 20, "D65": 21, "D75": 22, "D50": 23, "F2": 4}

TAG = {
    "NewSubfileType": 254,
    "Make": 271,
    "Model": 272,
    "StripOffsets": 273,
    "Orientation": 274,
    "StripByteCounts": 279,
    "DateTime": 306,
    "TileOffsets": 324,
    "TileByteCounts": 325,
    "SubIFDs": 330,
    "CFARepeatPatternDim": 33421,
    "CFAPattern": 33422,
    "ExposureTime": 33434,
    "FNumber": 33437,
    "ISOSpeedRatings": 34855,
    "DateTimeOriginal": 36867,
    "FocalLength": 37386,
    "DNGVersion": 50706,
    "DNGBackwardVersion": 50707,
    "UniqueCameraModel": 50708,
    "CFAPlaneColor": 50710,
    "CFALayout": 50711,
    "BlackLevelRepeatDim": 50713,
    "BlackLevel": 50714,
    "WhiteLevel": 50717,
    "DefaultCropOrigin": 50719,
    "DefaultCropSize": 50720,
    "ColorMatrix1": 50721,
    "ColorMatrix2": 50722,
    "AsShotNeutral": 50728,
    "CalibrationIlluminant1": 50778,
    "CalibrationIlluminant2": 50779,
    "ActiveArea": 50829,
    "NoiseProfile": 51041,
}

_DENOMINATOR = 1_000_000


class DngWriteError(IspBenchError, ValueError):
    """Arguments that cannot be written as a valid Bayer DNG."""


def _rationals(values: Sequence[float], signed: bool) -> tuple[int, ...]:
    out: list[int] = []
    for v in np.asarray(values, dtype=np.float64).ravel():
        frac = Fraction(float(v)).limit_denominator(_DENOMINATOR)
        limit = 2**31 - 1 if signed else 2**32 - 1
        if abs(frac.numerator) > limit or frac.denominator > limit:
            raise DngWriteError(f"value {v} does not fit a DNG {'S' if signed else ''}RATIONAL")
        out += [frac.numerator, frac.denominator]
    return tuple(out)


def write_dng(
    path: str | os.PathLike,
    mosaic: np.ndarray,
    *,
    cfa: str,
    black_level: Sequence[int] | int,
    white_level: int,
    wb_as_shot: Sequence[float],
    color_matrix: np.ndarray,
    iso: float,
    exposure_s: float,
    fnumber: float,
    make: str | None,
    model: str | None,
    unique_camera_model: str | None = None,
    noise_profile: Sequence[float] | None = None,
    orientation: int = 1,
    calibration_illuminant: int = ILLUMINANTS["D65"],
    focal_length_mm: float | None = None,
    datetime: _dt.datetime | None = None,
    default_crop: tuple[int, int, int, int] | None = None,
) -> Path:
    """Write a Bayer mosaic as an uncompressed DNG 1.4 that LibRaw reads back exactly.

    Parameters
    ----------
    path : output file; written to a temporary name and renamed, so a crash leaves no partial file.
    mosaic : 2-D uint16 sensor values, black level included (the visible area).
    cfa : ``RGGB``, ``GRBG``, ``GBRG`` or ``BGGR``: the colours of the top-left 2×2 tile.
    black_level : one integer or four, one per 2×2 CFA position (row-major).
    white_level : saturation level (e.g. 1023 for 10-bit data).
    wb_as_shot : as-shot white-balance multipliers (R, G, B); stored as AsShotNeutral = 1 / wb.
    color_matrix : camera RGB → XYZ (3×3); stored as its inverse, the DNG ColorMatrix1 (XYZ → camera).
    iso, exposure_s, fnumber, focal_length_mm : exposure facts, stored as TIFF/EP tags in IFD 0.
    make, model : camera maker and model (TIFF Make/Model); None leaves the tag out (as cinema cameras
        and converters do).
    unique_camera_model : DNG UniqueCameraModel, which every DNG carries; default ``"{make} {model}"``
        (of those given).
    noise_profile : DNG NoiseProfile ``(S, O)`` (one pair for all planes) or ``(S0, O0, S1, O1, S2, O2)``,
        variance ``S·x + O`` for a signal ``x`` in [0, 1].
    orientation : EXIF Orientation 1..8.
    calibration_illuminant : EXIF LightSource code of ``color_matrix`` (21 = D65).
    datetime : capture time, stored as DateTime and DateTimeOriginal; omitted when None.
    default_crop : (top, left, height, width) written as DefaultCropOrigin/DefaultCropSize.

    References
    ----------
    Adobe Systems, *Digital Negative (DNG) Specification*, version 1.4.0.0, 2012.
    """
    mosaic = np.asarray(mosaic)
    if mosaic.ndim != 2 or mosaic.dtype != np.uint16:
        raise DngWriteError(f"mosaic must be a 2-D uint16 array, got {mosaic.dtype} {mosaic.shape}")
    pattern = check_bayer(cfa)
    black = np.broadcast_to(np.asarray(black_level), (4,)) if np.ndim(black_level) == 0 else np.asarray(black_level)
    if black.shape != (4,) or np.any(black != np.round(black)) or np.any(black < 0):
        raise DngWriteError(f"black_level {black_level!r} must be one or four non-negative integers")
    if not 0 < int(white_level) <= 65535 or int(white_level) <= black.max():
        raise DngWriteError(f"white_level {white_level} must be in (max black level, 65535]")
    wb = np.asarray(wb_as_shot, dtype=np.float64)
    if wb.shape != (3,) or np.any(wb <= 0):
        raise DngWriteError(f"wb_as_shot {wb_as_shot!r} must be three positive multipliers (R, G, B)")
    cam_to_xyz = np.asarray(color_matrix, dtype=np.float64)
    if cam_to_xyz.shape != (3, 3):
        raise DngWriteError(f"color_matrix must be 3×3 (camera → XYZ), got shape {cam_to_xyz.shape}")
    if orientation not in range(1, 9):
        raise DngWriteError(f"orientation {orientation} must be an EXIF Orientation code 1..8")
    unique = unique_camera_model or " ".join(filter(None, [make, model]))
    if not unique:
        raise DngWriteError("a DNG must name its camera: give make/model or unique_camera_model (UniqueCameraModel)")

    xyz_to_cam = np.linalg.inv(cam_to_xyz)
    neutral = wb[1] / wb  # AsShotNeutral: camera response to white, G = 1
    tags: list[tuple[int, str, int, Any, bool]] = [
        (TAG[name], "s", 0, value, True) for name, value in (("Make", make), ("Model", model)) if value
    ] + [
        (TAG["Orientation"], "H", 1, int(orientation), True),
        (TAG["CFARepeatPatternDim"], "H", 2, (2, 2), True),
        (TAG["CFAPattern"], "B", 4, tuple("RGB".index(c) for c in pattern), True),
        (TAG["ExposureTime"], "2I", 1, _rationals([exposure_s], signed=False), True),
        (TAG["FNumber"], "2I", 1, _rationals([fnumber], signed=False), True),
        (TAG["ISOSpeedRatings"], "H", 1, int(round(iso)), True),
        (TAG["DNGVersion"], "B", 4, (1, 4, 0, 0), True),
        (TAG["DNGBackwardVersion"], "B", 4, (1, 3, 0, 0), True),
        (TAG["UniqueCameraModel"], "s", 0, unique, True),
        (TAG["CFAPlaneColor"], "B", 3, (0, 1, 2), True),
        (TAG["CFALayout"], "H", 1, 1, True),
        (TAG["BlackLevelRepeatDim"], "H", 2, (2, 2), True),
        (TAG["BlackLevel"], "I", 4, tuple(int(b) for b in black), True),
        (TAG["WhiteLevel"], "I", 1, int(white_level), True),
        (TAG["ColorMatrix1"], "2i", 9, _rationals(xyz_to_cam, signed=True), True),
        (TAG["AsShotNeutral"], "2I", 3, _rationals(neutral, signed=False), True),
        (TAG["CalibrationIlluminant1"], "H", 1, int(calibration_illuminant), True),
    ]
    if datetime is not None:
        stamp = datetime.strftime("%Y:%m:%d %H:%M:%S")
        tags += [(TAG["DateTime"], "s", 0, stamp, True), (TAG["DateTimeOriginal"], "s", 0, stamp, True)]
    if focal_length_mm is not None:
        tags.append((TAG["FocalLength"], "2I", 1, _rationals([focal_length_mm], signed=False), True))
    if noise_profile is not None:
        profile = tuple(float(v) for v in noise_profile)
        if len(profile) not in (2, 6):
            raise DngWriteError(f"noise_profile must hold 2 or 6 values (S, O per plane), got {len(profile)}")
        tags.append((TAG["NoiseProfile"], "d", len(profile), profile, True))
    if default_crop is not None:
        top, left, height, width = (int(v) for v in default_crop)
        tags.append((TAG["DefaultCropOrigin"], "I", 2, (left, top), True))
        tags.append((TAG["DefaultCropSize"], "I", 2, (width, height), True))
    tags.sort(key=lambda t: t[0])

    path = Path(path)
    with atomic_path(path, suffix=".dng") as tmp:
        tifffile.imwrite(
            tmp,
            mosaic,
            photometric=tifffile.PHOTOMETRIC.CFA,
            subfiletype=0,
            compression=None,
            metadata=None,
            software="isp-bench",
            extratags=tags,
        )
    return path


def _value(tags, code):
    tag = tags.get(code)
    return None if tag is None else tag.value


def _rational_values(tag) -> list[float] | None:
    if tag is None:
        return None
    values = np.asarray(tag.value, dtype=np.float64).ravel()
    if tag.dtype.name in ("RATIONAL", "SRATIONAL") or int(tag.dtype) in (5, 10):
        if values.size % 2:
            raise ValueError(f"{tag.name} holds {values.size} numbers, not numerator/denominator pairs")
        num, den = values[0::2], values[1::2]
        return (num / np.where(den == 0, np.nan, den)).tolist()
    return values.tolist()


def read_dng_tags(path: str | os.PathLike) -> dict[str, Any]:
    """The DNG tags rawpy does not expose, as plain values (absent tags are missing keys).

    Reads IFD 0 and the raw IFD (the full-resolution image: IFD 0 or the SubIFD whose
    NewSubfileType is 0). Also reports ``raw_data_end``: the largest byte offset the raw IFD's
    strips or tiles claim, so callers can tell a header-only file from a real one.

    Raises ExifError when the TIFF structure or a tag's value is malformed (corrupt file).
    """
    try:
        return _read_dng_tags(path)
    except Exception as exc:  # tifffile and the value decoding raise many types on corrupt data
        raise ExifError(path, f"its TIFF/DNG tags cannot be parsed ({type(exc).__name__}: {exc})",
                        "the file is corrupt; re-copy it from the source") from exc


def _read_dng_tags(path: str | os.PathLike) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tifffile.TiffFile(path) as tif:
        ifd0 = tif.pages[0]
        tags0 = ifd0.tags
        if TAG["DNGVersion"] not in tags0:
            return out
        out["dng_version"] = tuple(_value(tags0, TAG["DNGVersion"]))
        raw_ifd = ifd0
        if _value(tags0, TAG["NewSubfileType"]) not in (0, None):
            for sub in ifd0.pages or []:
                if _value(sub.tags, TAG["NewSubfileType"]) in (0, None):
                    raw_ifd = sub
                    break
        raw_tags = raw_ifd.tags

        def pick(name):
            code = TAG[name]
            return raw_tags.get(code) if code in raw_tags else tags0.get(code)

        for name in ("ColorMatrix1", "ColorMatrix2"):
            values = _rational_values(pick(name))
            if values and len(values) >= 9:
                out[name] = np.asarray(values[:9]).reshape(3, 3)
        for name in ("CalibrationIlluminant1", "CalibrationIlluminant2", "Orientation"):
            tag = pick(name)
            if tag is not None:
                out[name] = int(tag.value)
        for name in ("AsShotNeutral", "NoiseProfile", "BlackLevel", "DefaultCropOrigin", "DefaultCropSize"):
            values = _rational_values(pick(name))
            if values is not None:
                out[name] = tuple(values)
        tag = pick("WhiteLevel")
        if tag is not None:
            out["WhiteLevel"] = np.asarray(tag.value).ravel().tolist()
        tag = pick("UniqueCameraModel")
        if tag is not None:
            out["UniqueCameraModel"] = str(tag.value).strip() or None
        ends = []
        for off_name, cnt_name in (("StripOffsets", "StripByteCounts"), ("TileOffsets", "TileByteCounts")):
            offs, cnts = raw_tags.get(TAG[off_name]), raw_tags.get(TAG[cnt_name])
            if offs is not None and cnts is not None:
                o = np.asarray(offs.value, dtype=np.int64).ravel()
                c = np.asarray(cnts.value, dtype=np.int64).ravel()
                if o.size and o.size == c.size:
                    ends.append(int((o + c).max()))
        if ends:
            out["raw_data_end"] = max(ends)
    return out
