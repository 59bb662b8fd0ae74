"""Reading and writing the image files datasets use: 8-bit JPEG (with EXIF) and 8/16-bit PNG.

OpenCV handles 16-bit PNG (including 16-bit RGBA, which Pillow cannot decode) and Pillow handles
JPEG with EXIF. Arrays are always in RGB(A) channel order, H×W or H×W×C.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from isp_bench.errors import IspBenchError
from isp_bench.files import atomic_path


class ImageFileError(IspBenchError):
    """An image file that cannot be decoded."""


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode a PNG/JPEG/TIFF to a numpy array at its stored bit depth and pixel type, RGB(A) order.

    JPEG pixels are returned as stored (EXIF Orientation is *not* applied; see
    :func:`jpeg_orientation`).
    """
    path = Path(path)
    colour_type, ends_early = _png_facts(path)
    if ends_early:  # said here: OpenCV's libpng would print its own error line before ours
        raise ImageFileError(f"{path}: a truncated PNG (it ends before its IEND chunk); re-download or re-copy it")
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise ImageFileError(f"{path}: cannot be decoded as an image (missing, truncated or not an image file); "
                             "re-download or re-copy it")
    if image.ndim == 3 and image.shape[2] == 4 and colour_type == PNG_GREY_ALPHA:
        return image[..., [0, 3]]  # OpenCV expands grey + alpha to BGRA: give what the file holds, H×W×2
    if image.ndim == 3 and image.shape[2] in (3, 4):  # BGR(A) → RGB(A); not cvtColor, which refuses float64, int8, ...
        image = np.take(image, [2, 1, 0, 3][:image.shape[2]], axis=2)
    return image


PNG_GREY_ALPHA = 4
"""The colour type of a grey + alpha PNG (its IHDR chunk's 10th byte)."""


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_facts(path: Path) -> tuple[int | None, bool]:
    """``(colour type, ends early)`` of a PNG file, read in one open: the colour type in its IHDR chunk (0 grey,
    2 RGB, 3 palette, 4 grey + alpha, 6 RGBA), and whether it is cut short (its last KiB holds no IEND chunk, the
    chunk that ends a PNG; a decoder ignores anything after it). ``(None, False)`` for anything but a PNG file."""
    if not path.is_file():
        return None, False
    with open(path, "rb") as f:
        head = f.read(26)
        if len(head) < 8 or not head.startswith(PNG_SIGNATURE):
            return None, False
        f.seek(0, os.SEEK_END)
        f.seek(max(8, f.tell() - 1024))
        ends_early = b"IEND" not in f.read()
    return (head[25] if len(head) == 26 and head[12:16] == b"IHDR" else None), ends_early


def write_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write an 8- or 16-bit grey/RGB/RGBA PNG atomically (RGB(A) order)."""
    image = np.asarray(image)
    if image.dtype not in (np.uint8, np.uint16):
        raise ImageFileError(f"{path}: PNG data must be uint8 or uint16, got {image.dtype}")
    if image.ndim == 3:
        code = cv2.COLOR_RGBA2BGRA if image.shape[2] == 4 else cv2.COLOR_RGB2BGR
        image = cv2.cvtColor(image, code)
    with atomic_path(path, suffix=".png") as tmp:
        if not cv2.imwrite(str(tmp), image, [cv2.IMWRITE_PNG_COMPRESSION, 6]):
            raise ImageFileError(f"{path}: OpenCV failed to write the PNG")
    return Path(path)


# EXIF tag numbers used in camera JPEGs.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
"""File suffixes read as images (lower case)."""

EXIF_TAGS = {"Make": 0x010F, "Model": 0x0110, "Orientation": 0x0112, "DateTime": 0x0132,
             "ExposureTime": 0x829A, "FNumber": 0x829D, "ISOSpeedRatings": 0x8827,
             "DateTimeOriginal": 0x9003, "FocalLength": 0x920A}
_EXIF_IFD = 0x8769


def write_jpeg(path: str | os.PathLike, image: np.ndarray, *, quality: int = 95,
               exif: dict[str, Any] | None = None) -> Path:
    """Write an 8-bit RGB JPEG atomically, with camera EXIF (Make, Model, Orientation,
    ExposureTime, FNumber, ISOSpeedRatings, DateTimeOriginal, FocalLength) where given."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ImageFileError(f"{path}: JPEG data must be H×W×3 uint8, got {image.dtype} {image.shape}")
    pil = Image.fromarray(image, "RGB")
    info = Image.Exif()
    for key, value in (exif or {}).items():
        if value is None:
            continue
        code = EXIF_TAGS[key]
        if key in ("Make", "Model", "Orientation", "DateTime"):
            info[code] = value
        else:
            info.get_ifd(_EXIF_IFD)[code] = value
    with atomic_path(path, suffix=".jpg") as tmp:
        pil.save(tmp, "JPEG", quality=quality, exif=info.tobytes(), subsampling=0)
    return Path(path)


def jpeg_orientation(path: str | os.PathLike) -> int | None:
    """EXIF Orientation (1..8) of a JPEG, or None when absent."""
    with Image.open(path) as im:
        value = im.getexif().get(EXIF_TAGS["Orientation"])
    return int(value) if value else None


def apply_orientation(image: np.ndarray, orientation: int | None) -> np.ndarray:
    """Rotate/flip an H×W(×C) array the way a viewer honouring EXIF Orientation would display it
    (the same transforms as Pillow's ``ImageOps.exif_transpose``)."""
    ops = {
        None: lambda a: a, 1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1], 5: lambda a: np.swapaxes(a, 0, 1), 6: lambda a: np.rot90(a, -1),
        7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
        8: lambda a: np.rot90(a, 1),
    }
    if orientation not in ops:
        raise ImageFileError(f"EXIF Orientation {orientation!r} is not one of 1..8")
    return np.ascontiguousarray(ops[orientation](image))
