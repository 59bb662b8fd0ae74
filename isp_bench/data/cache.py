"""The preprocessing cache: packed, normalised raw and aligned targets as memory-mapped ``.npy``.

Each manifest row becomes one cache entry, keyed by the sha256 of its files, the levels and CFA the
manifest gives (which may be dataset-level constants), the target rotation and
:data:`PREPROCESS_VERSION`. Entries are written atomically, so a crashed build leaves no half entry and
a rebuild only does what is missing. The cache lives in :func:`cache_folder`: ``<root>/.isp-bench-cache`` unless
``--cache-dir`` or ``$ISP_BENCH_CACHE`` names another folder (a read-only dataset root needs one). Entries are keyed
by content, not by root, so one folder serves every dataset and every copy of one.

Entry contents:
- ``raw``: float32 4×h×w, ``(mosaic − black) / (white − black)`` packed R, Gr, Gb, B (not clipped).
- ``target`` / ``linear_target``: uint16 3×2h×2w (8-bit images scaled by 257, exactly), rotated back to
  sensor orientation and cropped like the raw.

A pair without a linear (restoration) target gets one from the classic pipeline when its raw carries
the white balance and colour matrix and is not a short exposure (:func:`derives_linear_target`): white
balance, demosaicking, camera → sRGB primaries, linear — what CameraNet's authors made with dcraw for
datasets that ship only a finished JPEG. That preparation step is
:func:`isp_bench.develop.classic_linear_rgb`, on a batch built by :mod:`isp_bench.batches`; the data
stage imports no model.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from isp_bench.errors import IspBenchError
from isp_bench.files import atomic_path, atomic_write_text, check_writable_folder
from isp_bench.images import IMAGE_SUFFIXES, read_image
from isp_bench.manifest import check_manifest_path
from isp_bench.raw import normalize, pack_rggb, read_raw, rggb_crop

PREPROCESS_VERSION = 2  # 2: classic-pipeline linear targets for pairs without one
CACHE_ENV = "ISP_BENCH_CACHE"


class CacheError(IspBenchError):
    """A manifest row that cannot be preprocessed (X-Trans, unaligned target, …)."""


def cache_folder(root: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """The preprocessing cache folder of dataset ``root``: ``cache_dir`` when given, else ``$ISP_BENCH_CACHE``
    when set, else ``<root>/.isp-bench-cache``."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(root) / ".isp-bench-cache"


def derives_linear_target(row: dict[str, Any]) -> bool:
    """Whether the cache makes this pair's linear target with the classic pipeline (see the module docstring)."""
    return (not row.get("linear_target_path") and row.get("wb_as_shot") is not None
            and row.get("color_matrix") is not None and (row.get("exposure_ratio") or 1.0) <= 1.0)


def has_linear_target(row: dict[str, Any]) -> bool:
    return bool(row.get("linear_target_path")) or derives_linear_target(row)


def _floats(values) -> list[float] | None:
    return None if values is None else [float(v) for v in values]


def entry_key(row: dict[str, Any]) -> str:
    parts = [PREPROCESS_VERSION, row["input_sha256"], row.get("target_sha256"), row.get("linear_target_sha256"),
             list(row["black_level"]), row["white_level"], row["cfa"], row.get("target_rot90") or 0]
    if derives_linear_target(row):
        parts += [_floats(row["wb_as_shot"]), _floats(row["color_matrix"])]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


def load_mosaic(path: Path) -> np.ndarray:
    """The 2-D sensor mosaic of an input file: image-file mosaics (16-bit Bayer PNGs) directly, raw
    containers through :func:`isp_bench.raw.read_raw`."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        mosaic = read_image(path)
        if mosaic.ndim != 2:
            raise CacheError(f"{path}: expected a single-channel Bayer mosaic image, got shape {mosaic.shape}")
        return mosaic
    return read_raw(path).mosaic


def _as_uint16_chw(image: np.ndarray, path: Path) -> np.ndarray:
    if image.ndim != 3 or image.shape[2] < 3:
        raise CacheError(f"{path}: target must be an RGB image, got shape {image.shape}")
    image = image[..., :3]  # drop alpha
    if image.dtype == np.uint8:
        image = image.astype(np.uint16) * 257
    elif image.dtype != np.uint16:
        raise CacheError(f"{path}: target must be 8- or 16-bit, got {image.dtype}")
    return np.ascontiguousarray(image.transpose(2, 0, 1))


def read_target(row: dict[str, Any], file: Path) -> np.ndarray:
    """The display target file of ``row`` as its dataset source reads it (H×W×C as stored): an image file, or a
    raw file rendered by the dataset authors' recipe (SID's long exposures)."""
    from isp_bench.datasets import get_source

    return get_source(row["dataset"]).read_target(file)


def sensor_orientation(image: np.ndarray, row: dict[str, Any]) -> np.ndarray:
    """A target image as its file holds it (H×W×C), turned back to the raw's (sensor) orientation by the
    row's ``target_rot90`` (``np.rot90`` turns; 0 when unset). :func:`preprocess_row` then crops it to whole
    RGGB tiles with the raw's crop (:func:`isp_bench.raw.pack_rggb`)."""
    return np.rot90(image, row.get("target_rot90") or 0)


def cache_geometry(image: np.ndarray, row: dict[str, Any]) -> np.ndarray:
    """An image in the geometry of its pair's target file (H×W×C, as stored) brought into the cache's, as
    :func:`preprocess_row` brings the target: turned to the sensor's orientation, then cropped to whole RGGB
    tiles (the crop :func:`isp_bench.raw.pack_rggb` takes off the raw, which has the turned image's size)."""
    turned = sensor_orientation(image, row)
    return rggb_crop(turned.shape[:2], row["cfa"]).apply(turned)


def preprocess_row(root: Path, row: dict[str, Any]) -> dict[str, np.ndarray]:
    """Decode one pair into the cache arrays (see the module docstring)."""
    if row["cfa"] not in ("RGGB", "GRBG", "GBRG", "BGGR"):
        raise CacheError(f"pair {row['pair_id']}: CFA {row['cfa']!r} cannot be packed to RGGB; models taking packed "
                         "raw need a Bayer sensor")
    mosaic = load_mosaic(check_manifest_path(row["input_path"], pair_id=row["pair_id"], column="input_path", root=root))
    packed, crop = pack_rggb(normalize(mosaic, row["black_level"], row["white_level"]), row["cfa"])
    arrays = {"raw": packed.astype(np.float32)}
    for key in ("target", "linear_target"):
        rel = row.get(f"{key}_path")
        if rel is None:
            continue
        file = check_manifest_path(rel, pair_id=row["pair_id"], column=f"{key}_path", root=root)
        image = sensor_orientation(read_target(row, file) if key == "target" else read_image(file), row)
        if image.shape[:2] != mosaic.shape:
            raise CacheError(
                f"pair {row['pair_id']}: {rel} is {image.shape[1]}×{image.shape[0]} but the raw is "
                f"{mosaic.shape[1]}×{mosaic.shape[0]} (flags {row.get('flags')}); only pixel-aligned pairs can be "
                "cached for training")
        arrays[key] = _as_uint16_chw(crop.apply(image), file)
    if derives_linear_target(row):
        arrays["linear_target"] = classic_linear_target(arrays["raw"], row)
    return arrays


def classic_linear_target(packed: np.ndarray, row: dict[str, Any]) -> np.ndarray:
    """uint16 3×2h×2w linear sRGB of the classic pipeline on a packed raw: the preparation step
    :func:`isp_bench.develop.classic_linear_rgb` on the row's batch (:func:`isp_bench.batches.frame_batch`)."""
    from isp_bench.batches import frame_batch
    from isp_bench.develop import classic_linear_rgb

    linear = classic_linear_rgb(frame_batch(packed, row, fill_missing=True))[0].numpy()
    return np.round(linear * 65535.0).astype(np.uint16)


@dataclass
class CacheEntry:
    raw: np.ndarray
    target: np.ndarray | None
    linear_target: np.ndarray | None


class PreprocessCache:
    """Preprocessed pairs of one dataset root in :func:`cache_folder` ``(root, cache_dir)``."""

    def __init__(self, root: str | os.PathLike, cache_dir: str | os.PathLike | None = None):
        self.root = Path(root)
        self.dir = cache_folder(root, cache_dir)

    def _paths(self, key: str) -> dict[str, Path]:
        return {name: self.dir / f"{key}.{name}.npy" for name in ("raw", "target", "linear_target")} | {
            "done": self.dir / f"{key}.json"}

    def has(self, row: dict[str, Any]) -> bool:
        return self._paths(entry_key(row))["done"].exists()

    def build_row(self, row: dict[str, Any]) -> str:
        key = entry_key(row)
        paths = self._paths(key)
        if paths["done"].exists():
            return key
        arrays = preprocess_row(self.root, row)
        for name, array in arrays.items():
            with atomic_path(paths[name], suffix=".npy") as tmp:
                np.save(tmp, array)
        atomic_write_text(paths["done"], json.dumps({"pair_id": row["pair_id"], "version": PREPROCESS_VERSION,
                                                     "arrays": sorted(arrays)}))
        return key

    def build(self, rows: list[dict[str, Any]], *, workers: int | None = None, scheduler: str = "local",
              progress: bool = True) -> None:
        """Preprocess every row that is not cached yet: in this process when there are few, else on
        ``scheduler``'s backend (:func:`isp_bench.parallel.executor`; its workers must see the root
        and the cache folder)."""
        from tqdm import tqdm

        from isp_bench.parallel import TaskLost, executor

        todo = self.missing(rows)
        if not todo:
            return
        if workers is None and scheduler == "local" and len(todo) < 16:
            workers = 1
        with tqdm(total=len(rows), initial=len(rows) - len(todo), desc="preprocess cache", unit="pair",
                  disable=not progress) as bar, executor(scheduler, workers, preload=("isp_bench.data.cache",)) as ex:
            for row, outcome in ex.map_unordered(self.build_row, todo):
                if isinstance(outcome, TaskLost):
                    raise CacheError(f"pair {row['pair_id']} ({row['input_path']}): {outcome}")
                bar.update()

    def missing(self, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows not cached yet. When there are any, the cache folder is made, and a folder that cannot be
        written (a read-only dataset root, say) fails here with the fix, before any work."""
        todo = [r for r in rows if not self.has(r)]
        if not todo:
            return todo
        try:
            check_writable_folder(self.dir)
        except OSError as error:
            raise CacheError(
                f"{self.dir}: cannot write the preprocessing cache there ({error.strerror or error}), and {len(todo)} "
                f"pair(s) of {self.root} are not preprocessed yet. Fix: put the cache on writable storage with "
                f"--cache-dir DIR or {CACHE_ENV}=DIR (entries are keyed by content, so one folder serves every "
                "dataset), or build it once where the dataset root is writable") from error
        return todo

    def load(self, row: dict[str, Any]) -> CacheEntry:
        """Memory-mapped arrays of a cached row (build it first), as plain read-only ndarrays: slicing an
        ``np.memmap`` runs Python code for every view, a tenth of a patch's time (the map stays open
        through the arrays' base)."""
        paths = self._paths(entry_key(row))
        if not paths["done"].exists():
            raise CacheError(f"pair {row['pair_id']} is not in the cache at {self.dir}; call build() first")

        def load(name: str) -> np.ndarray | None:
            return np.load(paths[name], mmap_mode="r").view(np.ndarray) if paths[name].exists() else None

        return CacheEntry(load("raw"), load("target"), load("linear_target"))
