"""read_raw: one raw file (any container LibRaw reads) → RawCapture, with rawpy and exifread."""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import os
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import exifread
import numpy as np
import rawpy

from isp_bench.errors import (
    ExifError,
    NoPixelDataError,
    NotMosaicError,
    RawFileError,
    TruncatedFileError,
    UnsupportedFormatError,
)
from isp_bench.raw.capture import RawCapture, camera_name
from isp_bench.raw.dng import read_dng_tags

# exifread logs what it cannot parse ("File format not recognized.") and, with no logging set up, Python prints
# that on stderr, through progress bars and --quiet; this module raises its own error naming the file and the fix.
# An application that configures logging still gets exifread's messages.
logging.getLogger("exifread").addHandler(logging.NullHandler())

# A raw file stores at least this many bytes per sensor pixel. Lossless-compressed real sensor
# data needs several bits per pixel even for a dark frame; metadata-only stubs have ~0.01.
MIN_BYTES_PER_PIXEL = 1 / 16

# LibRaw's `flip` code → EXIF Orientation (used when the file has no Orientation tag).
_FLIP_TO_ORIENTATION = {0: 1, 3: 3, 5: 8, 6: 6}


def _ratio(tag) -> float | None:
    """A numeric exifread tag as float; EXIF's 0 ("not recorded" for exposure facts) → None."""
    if tag is None:
        return None
    values = tag.values if isinstance(tag.values, (list, tuple)) else [tag.values]
    if not values:
        return None
    v = values[0]
    try:
        value = float(v.num) / float(v.den) if hasattr(v, "num") else float(v)
    except (ZeroDivisionError, TypeError, ValueError):
        return None
    return value if value > 0 and np.isfinite(value) else None


def _text(tag) -> str | None:
    if tag is None:
        return None
    text = str(tag.printable).strip().strip("\x00").strip()
    return text or None


def _exif_tag(tags: dict, name: str):
    return tags.get(f"EXIF {name}") or tags.get(f"Image {name}")


def read_exif(path: str | os.PathLike) -> dict[str, Any]:
    """The capture facts exifread finds in ``path`` (missing ones are None).

    Raises ExifError if exifread fails, or if a TIFF-based container (DNG, CR2, NEF, ARW, …)
    yields no tags at all (its IFD chain is unreadable).
    """
    with open(path, "rb") as fh:  # an unreadable file is the caller's OSError, not a metadata error
        try:
            tags = exifread.process_file(fh, details=False)
        except Exception as exc:  # exifread raises many types on corrupt data (OSError: seek past an offset)
            raise ExifError(path, f"exifread cannot parse its metadata ({type(exc).__name__}: {exc})",
                            "the file is corrupt; re-copy it from the source") from exc
    if not tags and _is_tiff(Path(path)):
        raise ExifError(path, "it has a TIFF header but exifread finds no readable IFD (the first IFD offset or its "
                        "entries point outside the file)", "the file is corrupt; re-copy it from the source")
    orientation = tags.get("Image Orientation")
    when = _text(_exif_tag(tags, "DateTimeOriginal")) or _text(tags.get("Image DateTime"))
    return {
        "make": _text(tags.get("Image Make")),
        "model": _text(tags.get("Image Model")),
        "iso": _ratio(_exif_tag(tags, "ISOSpeedRatings") or _exif_tag(tags, "PhotographicSensitivity")),
        "exposure_s": _ratio(_exif_tag(tags, "ExposureTime")),
        "fnumber": _ratio(_exif_tag(tags, "FNumber")),
        "focal_length_mm": _ratio(_exif_tag(tags, "FocalLength")),
        "datetime": _exif_datetime(when),
        "orientation": int(orientation.values[0]) if orientation is not None and orientation.values else None,
        "n_tags": len(tags),
    }


def _exif_datetime(text: str | None) -> str | None:
    """EXIF 'YYYY:MM:DD HH:MM:SS' → ISO 8601; None if absent or malformed."""
    if not text:
        return None
    try:
        return _dt.datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S").isoformat()
    except ValueError:
        return None


def _cfa_string(raw: rawpy.RawPy, path) -> str:
    try:
        pattern = raw.raw_pattern
    except NotImplementedError as exc:  # rawpy describes Bayer (2×2 tile) and X-Trans layouts only
        raise NotMosaicError(path, f"LibRaw reports a colour filter layout rawpy cannot describe ({exc})",
                             "only Bayer and X-Trans sensors are supported; for a Bayer camera the file is "
                             "corrupt: re-copy it from the source") from exc
    desc = raw.color_desc.decode("ascii", "replace")
    if pattern is None or raw.raw_image.ndim != 2:
        raise NotMosaicError(
            path,
            f"holds already-demosaiced data (LibRaw raw type {raw.raw_type.name}, image shape "
            f"{tuple(raw.raw_image.shape)}), not a colour filter array mosaic",
            "use the camera's original raw file, not a LinearRaw DNG or a scanner file",
        )
    if pattern.shape == (6, 6):
        return "XTRANS"
    colors = [int(c) for c in raw.raw_colors_visible[:2, :2].ravel()]
    letters = "".join(desc[c] if c < len(desc) else "?" for c in colors)  # "?": an index past the colour list
    if pattern.shape != (2, 2) or sorted(letters) != sorted("RGGB"):
        raise NotMosaicError(path, f"CFA pattern {pattern.tolist()} over colours {desc!r} is not a Bayer RGB mosaic",
                             "only Bayer (RGGB phases) and X-Trans sensors are supported")
    return letters


def _check_pixel_data(path: Path, raw: rawpy.RawPy, mosaic: np.ndarray, dng: dict[str, Any]) -> None:
    size = path.stat().st_size
    sensor_pixels = raw.sizes.raw_height * raw.sizes.raw_width
    data_end = dng.get("raw_data_end")
    if data_end is not None and data_end > size:
        raise NoPixelDataError(
            path, f"its raw image claims bytes up to offset {data_end} but the file has only {size} bytes "
            "(metadata-only or truncated DNG)", "re-download or re-copy the complete file")
    if size < sensor_pixels * MIN_BYTES_PER_PIXEL:
        raise NoPixelDataError(
            path, f"{size} bytes cannot hold a {raw.sizes.raw_width}×{raw.sizes.raw_height} sensor readout "
            f"(under {8 * MIN_BYTES_PER_PIXEL:.1f} bit per pixel): the container holds metadata only",
            "re-download or re-copy the complete file")
    if mosaic.size and mosaic.min() == mosaic.max():
        raise NoPixelDataError(path, f"every visible pixel has the same value ({int(mosaic.min())}): no sensor data",
                               "re-download or re-copy the complete file")


def read_raw(path: str | os.PathLike) -> RawCapture:
    """Read one raw file with rawpy (LibRaw) and exifread.

    The mosaic is LibRaw's visible area; its CFA phase is read from LibRaw's colour map of that
    area (``raw_colors_visible``), so margins with odd offsets are handled. Black levels are
    LibRaw's per-channel levels placed at each 2×2 CFA position. For DNG files, the colour
    matrices, AsShotNeutral, NoiseProfile, DefaultCrop and Orientation come from the file's tags
    (tifffile); for other containers the colour matrix is LibRaw's ``rgb_xyz_matrix`` (Adobe's D65
    calibration). EXIF exposure facts recorded as 0 are treated as absent (None). The camera's name
    comes from Make/Model, else from the DNG UniqueCameraModel (``camera_name_source`` says which).

    Raises
    ------
    UnsupportedFormatError : LibRaw does not recognise the container.
    TruncatedFileError : LibRaw hits the end of the file or corrupt data while decoding.
    NotMosaicError : the file holds demosaiced (LinearRaw) data.
    NoPixelDataError : the container opens but has no real pixel data (metadata-only stubs).
    ExifError : the EXIF/TIFF metadata cannot be parsed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such raw file")
    exif = read_exif(path)
    with _unpacked(path, exif) as raw:
        cfa = _cfa_string(raw, path)
        mosaic = np.array(raw.raw_image_visible, dtype=np.uint16, copy=True)
        dng = read_dng_tags(path) if _is_tiff(path) else {}
        _check_pixel_data(path, raw, mosaic, dng)

        per_channel = np.asarray(raw.black_level_per_channel, dtype=np.float64)
        # LibRaw's per-channel levels placed at the top-left 2×2 positions (for X-Trans: of its 6×6 tile)
        black = tuple(float(per_channel[c]) for c in raw.raw_colors_visible[:2, :2].ravel())
        wb_raw = np.asarray(raw.camera_whitebalance, dtype=np.float64)
        sizes = raw.sizes
        rgb_xyz = np.asarray(raw.rgb_xyz_matrix, dtype=np.float64)[:3]
        flip = sizes.flip
        white_level = float(raw.white_level)

    wb = None
    if "AsShotNeutral" in dng and all(v > 0 for v in dng["AsShotNeutral"][:3]):
        neutral = np.asarray(dng["AsShotNeutral"][:3])
        wb = tuple((neutral[1] / neutral).tolist())
    elif wb_raw[:3].min() > 0:
        wb = tuple((wb_raw[:3] / wb_raw[1]).tolist())

    xyz_to_cam, illuminant, color_matrix = None, None, None
    if "ColorMatrix1" in dng:
        xyz_to_cam, illuminant = dng["ColorMatrix1"], dng.get("CalibrationIlluminant1")
        color_matrix = _inverse(xyz_to_cam, "DNG ColorMatrix1", path)
    elif np.any(rgb_xyz):
        xyz_to_cam, illuminant = rgb_xyz, 21  # LibRaw's table holds Adobe's D65 matrices
        color_matrix = _inverse(xyz_to_cam, "LibRaw rgb_xyz_matrix", path)
    cm2 = dng.get("ColorMatrix2")

    orientation = dng.get("Orientation") or exif["orientation"] or _FLIP_TO_ORIENTATION.get(flip)
    default_crop = None
    if "DefaultCropOrigin" in dng and "DefaultCropSize" in dng:
        (left, top), (width, height) = dng["DefaultCropOrigin"][:2], dng["DefaultCropSize"][:2]
        default_crop = (int(round(top)), int(round(left)), int(round(height)), int(round(width)))
    elif sizes.crop_width > 0 and sizes.crop_height > 0:
        default_crop = (sizes.crop_top_margin - sizes.top_margin, sizes.crop_left_margin - sizes.left_margin,
                        sizes.crop_height, sizes.crop_width)

    return RawCapture(
        mosaic=mosaic,
        cfa=cfa,
        black_level=black,
        white_level=white_level,
        wb_as_shot=wb,
        color_matrix=color_matrix,
        color_matrix_illuminant=illuminant,
        xyz_to_camera=_as_tuple(xyz_to_cam) if xyz_to_cam is not None else None,
        color_matrix2=_inverse(cm2, "DNG ColorMatrix2", path) if cm2 is not None else None,
        color_matrix2_illuminant=dng.get("CalibrationIlluminant2") if cm2 is not None else None,
        noise_profile=tuple(dng["NoiseProfile"]) if "NoiseProfile" in dng else None,
        orientation=orientation,
        default_crop=default_crop,
        visible_margins=(int(sizes.top_margin), int(sizes.left_margin)),
        make=exif["make"],
        model=exif["model"],
        unique_camera_model=dng.get("UniqueCameraModel"),
        iso=exif["iso"],
        exposure_s=exif["exposure_s"],
        fnumber=exif["fnumber"],
        focal_length_mm=exif["focal_length_mm"],
        datetime=exif["datetime"],
        container="DNG" if dng else path.suffix.lstrip(".").upper() or None,
    )


def render_raw(path: str | os.PathLike, **postprocess) -> np.ndarray:
    """LibRaw's own rendering of a raw file, ``rawpy.RawPy.postprocess(**postprocess)`` (H×W×3), as some datasets'
    authors made their targets (SID's long exposures); a broken file raises what :func:`read_raw` raises."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such raw file")
    with _unpacked(path, read_exif(path)) as raw:
        return raw.postprocess(**postprocess)


def _unpacked(path: Path, exif: dict[str, Any]) -> rawpy.RawPy:
    """``path`` opened and decoded by LibRaw (close it, or use it as a context manager); LibRaw's errors, with what
    it printed to stderr meanwhile, become the :class:`RawFileError` that names the file and the fix."""
    raw = rawpy.RawPy()
    failure = None
    with _c_stderr_captured() as said:
        try:
            raw.open_file(str(path))
            raw.unpack()  # rawpy unpacks lazily, on the first pixel access: decode here, where its errors are mapped
        except rawpy.LibRawError as exc:
            failure = exc
    if failure is not None:
        raw.close()
        raise _libraw_error(path, failure, exif, _libraw_diagnosis(said.text, path)) from failure
    if said.text:  # LibRaw read the file after all, or someone else wrote: nothing is lost
        sys.stderr.write(said.text)
    return raw


@contextlib.contextmanager
def _c_stderr_captured():
    """Collects what is written to the process's stderr (file descriptor 2) inside the block, in ``.text``.

    LibRaw's C code prints its diagnosis of a broken file ("<path>: Unexpected end of file") straight to file
    descriptor 2, past Python, progress bars and ``--quiet``, while rawpy raises a bare "Input/output error": the
    block's text goes into the error instead. Descriptor 2 is the whole process's, so anything another thread
    writes meanwhile is caught too; :func:`read_raw` passes the text on when no error takes it."""
    captured = SimpleNamespace(text="")
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no descriptor 2 (a detached process): nothing to capture
        yield captured
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.text = sink.read().decode("utf-8", "replace")


def _libraw_diagnosis(text: str, path: Path) -> str:
    """LibRaw's own message lines, without the file name it puts in front of them."""
    lines = (line.removeprefix(f"{path}: ").strip() for line in text.splitlines())
    return "; ".join(line for line in lines if line)


def _libraw_error(path: Path, exc: Exception, exif: dict[str, Any], diagnosis: str = "") -> RawFileError:
    """The RawFileError for a LibRaw error raised while opening or unpacking ``path`` (``diagnosis``: what LibRaw
    printed meanwhile, if anything)."""
    said = f"{exc}; LibRaw: {diagnosis}" if diagnosis else str(exc)
    if isinstance(exc, rawpy.LibRawFileUnsupportedError):
        camera = camera_name(exif["make"], exif["model"])[0]
        hint = f" although its EXIF names the camera {camera!r}" if camera else ""
        return UnsupportedFormatError(
            path, f"LibRaw does not recognise it as a raw file{hint} ({said}; {path.stat().st_size} bytes)",
            "check that the file is a complete camera raw (DNG, CR2, NEF, ARW, RAF, …)")
    if isinstance(exc, (rawpy.LibRawIOError, rawpy.LibRawDataError, rawpy.LibRawTooBigError)):
        return TruncatedFileError(
            path, f"LibRaw could not read its pixel data ({type(exc).__name__}: {said}); "
            "the file is truncated or its data is corrupt", "re-download or re-copy the complete file")
    return UnsupportedFormatError(path, f"LibRaw failed to open it ({type(exc).__name__}: {said})")


def _inverse(xyz_to_cam: np.ndarray, name: str, path: Path) -> tuple[tuple[float, ...], ...]:
    """camera → XYZ, the inverse of an XYZ → camera matrix; ExifError if it has none."""
    matrix = np.asarray(xyz_to_cam, dtype=np.float64)
    if not np.all(np.isfinite(matrix)) or abs(np.linalg.det(matrix)) < 1e-12:
        raise ExifError(path, f"its {name} {np.round(matrix, 6).tolist()} is not an invertible colour matrix "
                        "(zero or undefined entries)", "the file is corrupt; re-copy it from the source")
    return _as_tuple(np.linalg.inv(matrix))


def _as_tuple(matrix: np.ndarray) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(v) for v in row) for row in np.asarray(matrix, dtype=np.float64))


def _is_tiff(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(4)
    return head in (b"II*\x00", b"MM\x00*")
