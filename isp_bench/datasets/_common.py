"""Helpers the dataset sources share: the shipped lists, hash splits, root discovery, PNG mosaics."""

from __future__ import annotations

import csv
import hashlib
import re
from importlib import resources
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from isp_bench.errors import DatasetError

RAW_EXTENSIONS = (".dng", ".arw", ".cr2", ".cr3", ".crw", ".nef", ".raf", ".rw2", ".orf", ".pef", ".srw", ".3fr",
                  ".fff", ".iiq", ".cap", ".mos", ".raw", ".rwl", ".x3f", ".erf", ".kdc", ".dcr", ".mef", ".mrw",
                  ".nrw", ".srf", ".sr2", ".gpr")


def list_file(source: str, name: str) -> Path:
    """A list shipped beside the adapters, ``isp_bench/datasets/lists/<source>/<name>`` (official split
    lists, per-image metadata; origins in NOTICE)."""
    path = Path(str(resources.files("isp_bench.datasets").joinpath("lists", source, name)))
    if not path.is_file():
        raise DatasetError(f"{path}: package data file missing; reinstall isp-bench")
    return path


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def hash_fraction(key: str, salt: str) -> float:
    """A number in [0, 1) fixed by ``salt`` and ``key`` alone (sha256), never by listing order."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def hash_split(key: str, salt: str, fractions: Sequence[tuple[str, float]]) -> str:
    """Assign ``key`` to a split by :func:`hash_fraction` (``fractions`` sum to 1, in order)."""
    u = hash_fraction(key, salt)
    edge = 0.0
    for name, frac in fractions:
        edge += frac
        if u < edge:
            return name
    return fractions[-1][0]


def hash_order(keys: Iterable[str], salt: str) -> list[str]:
    """``keys`` sorted by their salted sha256: a frozen pseudo-random order independent of input order."""
    return sorted(set(keys), key=lambda k: (hashlib.sha256(f"{salt}:{k}".encode()).hexdigest(), k))


def find_root(root: Path, is_root, hint: str, *, names: Sequence[str] = ()) -> Path:
    """``root`` itself if ``is_root(root)``, else a child folder (one of ``names`` first, then any one
    level down) that is; users often pass the folder that holds the dataset's top folder."""
    if root is None or not Path(root).is_dir():
        raise DatasetError(f"{root}: dataset root is not a folder; pass the folder you downloaded with --root")
    root = Path(root)
    if is_root(root):
        return root
    candidates = [root / n for n in names] + sorted(p for p in root.iterdir() if p.is_dir())
    for cand in candidates:
        if cand.is_dir() and is_root(cand):
            return cand
    raise DatasetError(f"{root}: does not look like {hint}; check the download and pass its top folder with --root")


def rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def natural_key(text: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def sorted_pngs(folder: Path) -> list[Path]:
    """The PNG files of ``folder`` in natural order (``2.png`` before ``10.png``); none if it is absent."""
    return sorted(folder.glob("*.png"), key=lambda p: natural_key(p.name)) if folder.is_dir() else []


def exif_value(path: Path, key: str):
    """One field of :func:`isp_bench.raw.read_exif`, or None when the file cannot be read (the ingest
    reports broken files itself when it reads them)."""
    from isp_bench.raw import read_exif

    try:
        return read_exif(path)[key]
    except Exception:
        return None


def read_png_mosaic(path: Path) -> np.ndarray:
    """A single-channel 8/16-bit PNG mosaic as a 2-D uint16 array (DatasetError if it is not one)."""
    from isp_bench.images import read_image

    image = read_image(path)
    if image.ndim == 3 and image.shape[2] >= 3 and all(np.array_equal(image[..., 0], image[..., c]) for c in (1, 2)):
        image = image[..., 0]  # grey stored as RGB
    if image.ndim != 2:
        raise DatasetError(f"{path}: expected a single-channel mosaic PNG, got shape {image.shape}; "
                           "is this the raw folder of the dataset?")
    return image.astype(np.uint16, copy=False)


def detect_bayer_phase(mosaic: np.ndarray, rgb: np.ndarray) -> tuple[str, float]:
    """The Bayer phase of ``mosaic`` found by correlating each 2×2 sub-lattice with the ground-truth
    channels sampled at the same positions (``rgb`` aligned H×W×3).

    Returns (pattern, margin): ``margin`` is the smallest gap, over the four positions, between the
    correlation of the chosen channel and the best other channel (near 0 = ambiguous).
    Only patterns with one R, two G and one B are considered.
    """
    h, w = (min(mosaic.shape[0], rgb.shape[0]) // 2) * 2, (min(mosaic.shape[1], rgb.shape[1]) // 2) * 2
    m = mosaic[:h, :w].astype(np.float64)
    g = rgb[:h, :w, :3].astype(np.float64)
    corr = np.zeros((4, 3))
    for pos, (dy, dx) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        a = m[dy::2, dx::2].ravel()
        for c in range(3):
            b = g[dy::2, dx::2, c].ravel()
            if a.std() == 0 or b.std() == 0:
                corr[pos, c] = 0.0
            else:
                # correlation on the values and agreement in level: exact sampling gives 1 and 0 error
                corr[pos, c] = np.corrcoef(a, b)[0, 1] - np.abs(a - b).mean() / (np.abs(a).mean() + np.abs(b).mean() + 1e-9)
    best, best_score = None, -np.inf
    for pattern in ("RGGB", "GRBG", "GBRG", "BGGR"):
        score = sum(corr[pos, "RGB".index(ch)] for pos, ch in enumerate(pattern))
        if score > best_score:
            best, best_score = pattern, score
    margin = min(corr[pos, "RGB".index(ch)] - max(corr[pos, c] for c in range(3) if c != "RGB".index(ch))
                 for pos, ch in enumerate(best))
    return best, float(margin)


def flag_exif_orientation(row: dict, target_info: dict | None) -> None:
    """Flag a JPEG stored in sensor orientation whose EXIF Orientation asks a viewer to turn it."""
    if target_info and target_info.get("orientation") not in (None, 1) and "rotated_target" not in row["flags"]:
        row["flags"].append("target_exif_orientation")


ROT90 = {6: 1, 8: -1, 5: 1, 7: -1}  # EXIF Orientation → np.rot90 turns back to sensor orientation


def classify_target_geometry(row: dict, target_info: dict | None) -> dict:
    """Compare a rendered target's size with the raw's (its DefaultCrop and Orientation) and flag
    ``rotated_target`` (``target_rot90`` set), ``default_crop_applied``, ``resized_target`` (same aspect,
    other size) or ``cropped_target`` (other aspect: an editor's crop). Replaces the base check."""
    if target_info is None:
        return row
    th, tw = int(target_info["height"]), int(target_info["width"])
    row["target_height"], row["target_width"], row["target_rot90"] = th, tw, 0
    h, w = row["height"], row["width"]
    crop = row.get("default_crop")
    ch, cw = (crop[2], crop[3]) if crop else (h, w)
    orientation = row.get("orientation")
    turned = orientation in (5, 6, 7, 8)
    if turned:
        row["target_rot90"] = ROT90[orientation]
    sensor_dims = (th, tw) if not turned else (tw, th)  # target size brought back to sensor orientation
    if not turned and (th, tw) in ((w, h), (cw, ch)) and (th, tw) != (h, w):
        row["target_rot90"] = 1  # stored rotated although the raw says upright: direction unknown
        row["flags"] += ["rotated_target", "rotation_guessed"]
        sensor_dims = (tw, th)
    elif turned:
        row["flags"].append("rotated_target")
    if sensor_dims == (h, w):
        return row
    if sensor_dims == (ch, cw):
        row["flags"].append("default_crop_applied")
    elif abs(sensor_dims[0] / sensor_dims[1] - ch / cw) < 0.01:
        row["flags"].append("resized_target")
    else:
        row["flags"].append("cropped_target")
    return row
