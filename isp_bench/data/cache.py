"""The preprocessing cache: packed, normalised raw and aligned targets as memory-mapped ``.npy``.

Each manifest row becomes one cache entry, keyed by the sha256 of its files, the levels and CFA the
manifest gives (which may be dataset-level constants), the target rotation and
:data:`PREPROCESS_VERSION`. Entries are written atomically, so a crashed build leaves no half entry and
a rebuild only does what is missing. The cache lives in :func:`cache_folder`: ``<root>/.isp-bench-cache`` unless
``--cache-dir`` or ``$ISP_BENCH_CACHE`` names another folder (a read-only dataset root needs one). Entries are keyed
by content, not by root, so one folder serves every dataset and every copy of one.

Entry contents:
- ``raw``: float32 4×h×w, ``(mosaic − black) / (white − black)`` packed R, Gr, Gb, B (not clipped).
- ``target`` / ``linear_target``: uint16 3×2h×2w (8-bit images scaled by 257, exactly), read as the dataset
  source reads its targets (:meth:`~isp_bench.datasets.base.DatasetSource.read_target`: SID's raw long exposures
  rendered, FiveK's ProPhoto RGB converted to sRGB), rotated back to sensor orientation and cropped like the raw.
  A target of the size of the raw's DefaultCrop (a renderer that applies it: Lightroom's FiveK exports, HDR+'s
  final.jpg) covers that area of the mosaic, which is then the area packed (:func:`raw_area`).

A pair without a linear (restoration) target gets one from the classic pipeline when its raw carries
the white balance and colour matrix and is not a short exposure (:func:`derives_linear_target`): white
balance, demosaicking, camera → sRGB primaries, linear — what CameraNet's authors made with dcraw for
datasets that ship only a finished JPEG. A short exposure whose target is a raw file of the same scene
(SID's long exposure) gets the classic pipeline's rendering of that raw, with its own levels and metadata. That
preparation step is :func:`isp_bench.develop.classic_linear_rgb`, on a batch built by :mod:`isp_bench.batches`;
the data stage imports no model.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from isp_bench.errors import IspBenchError
from isp_bench.files import atomic_path, atomic_write_text, check_writable_folder, sha256_file
from isp_bench.images import IMAGE_SUFFIXES, read_image
from isp_bench.manifest import FILE_COLUMNS, check_manifest_path
from isp_bench.raw import RawCapture, normalize, pack_rggb, read_raw, rggb_crop, shift_cfa

# 2: classic-pipeline linear targets for pairs without one; 3: targets through the source's read_target, raws cut
# to the DefaultCrop area their target covers
PREPROCESS_VERSION = 3
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
    """Whether the cache makes this pair's linear target with the classic pipeline (see the module docstring): from
    its raw, or from its target when that is a raw file of the same scene (SID's long exposure)."""
    return (not row.get("linear_target_path") and row.get("wb_as_shot") is not None
            and row.get("color_matrix") is not None
            and ((row.get("exposure_ratio") or 1.0) <= 1.0 or raw_target(row)))


def raw_target(row: dict[str, Any]) -> bool:
    """Whether the pair's target file is a raw file (its source's ``target_kind``: SID's long exposures)."""
    return bool(row.get("target_path")) and _target_kind(row["dataset"]) == "raw"


@functools.lru_cache(maxsize=None)
def _target_kind(dataset: str) -> str:
    from isp_bench.datasets import get_source

    return get_source(dataset).target_kind


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


def raw_area(row: dict[str, Any], mosaic_shape: tuple[int, int], target_shape: tuple[int, int]) -> tuple[int, ...]:
    """(top, left, height, width) of the mosaic that a target of ``target_shape`` (in sensor orientation) covers:
    the whole mosaic when the sizes agree, else the raw's DefaultCrop area when the target has its size.

    Raises :class:`CacheError` for any other size (a resized or cropped rendering cannot be aligned)."""
    if tuple(target_shape) == tuple(mosaic_shape):
        return (0, 0, *mosaic_shape)
    crop = row.get("default_crop")
    if crop is not None and tuple(target_shape) == (crop[2], crop[3]):
        return tuple(int(v) for v in crop)
    raise CacheError(
        f"pair {row['pair_id']}: its target is {target_shape[1]}×{target_shape[0]} but the raw is "
        f"{mosaic_shape[1]}×{mosaic_shape[0]}" + (f" (DefaultCrop {crop[3]}×{crop[2]})" if crop else "")
        + f" (flags {row.get('flags')}); only pixel-aligned pairs can be cached for training")


def cache_geometry(image: np.ndarray, row: dict[str, Any]) -> np.ndarray:
    """An image in the geometry of its pair's target file (H×W×C, as stored) brought into the cache's, as
    :func:`preprocess_row` brings the target: turned to the sensor's orientation, then cropped to whole RGGB
    tiles (the crop :func:`isp_bench.raw.pack_rggb` takes off the area of the raw the target covers)."""
    turned = sensor_orientation(image, row)
    top, left, _, _ = raw_area(row, (row["height"], row["width"]), turned.shape[:2])
    return rggb_crop(turned.shape[:2], shift_cfa(row["cfa"], top, left)).apply(turned)


def recorded_file(root: Path, row: dict[str, Any], column: str) -> Path | None:
    """The file of ``row``'s path ``column`` under ``root`` (``None`` when the row has none), refused
    (:class:`CacheError`) when its bytes are not those the manifest recorded: the cache is keyed by the manifest's
    hashes, so an entry built from a changed file would be taken for the recorded one (and kept after the file is
    restored). Rows ingested without hashes (``not_hashed``) are taken as they are."""
    rel = row.get(column)
    if rel is None:
        return None
    file = check_manifest_path(rel, pair_id=row["pair_id"], column=column, root=root)
    _, size_column, sha_column = next(columns for columns in FILE_COLUMNS if columns[0] == column)
    recorded = row.get(sha_column)
    if recorded and file.is_file():
        found = sha256_file(file) if file.stat().st_size == row.get(size_column) else None
        if found != recorded:
            raise CacheError(
                f"pair {row['pair_id']}: {file} is not the file the manifest recorded ({column}: "
                + (f"sha256 {found[:12]}…, recorded {recorded[:12]}…" if found else
                   f"{file.stat().st_size} bytes, recorded {row.get(size_column)}")
                + "); the dataset changed after it was ingested. Fix: restore the file, or re-ingest the dataset to "
                "record it (`isp-bench manifest validate MANIFEST --root ROOT` lists every changed file)")
    return file


def preprocess_row(root: Path, row: dict[str, Any]) -> dict[str, np.ndarray]:
    """Decode one pair into the cache arrays (see the module docstring)."""
    if row["cfa"] not in ("RGGB", "GRBG", "GBRG", "BGGR"):
        raise CacheError(f"pair {row['pair_id']}: CFA {row['cfa']!r} cannot be packed to RGGB; models taking packed "
                         f"raw need a Bayer sensor (ingest a Bayer camera's files only: `isp-bench ingest "
                         f"{row['dataset']} --model CAMERA`, see `isp-bench datasets`)")
    mosaic = load_mosaic(recorded_file(root, row, "input_path"))
    images = {}
    for key in ("target", "linear_target"):
        file = recorded_file(root, row, f"{key}_path")
        if file is not None:
            images[key] = (file, sensor_orientation(read_target(row, file) if key == "target" else read_image(file),
                                                    row))
    areas = {raw_area(row, mosaic.shape, image.shape[:2]) for _, image in images.values()} or {(0, 0, *mosaic.shape)}
    if len(areas) > 1:
        raise CacheError(f"pair {row['pair_id']}: its target and linear target cover different areas of the raw")
    area = areas.pop()
    packed, crop = _packed_area(mosaic, row["black_level"], row["white_level"], row["cfa"], area)
    arrays = {"raw": packed}
    for key, (file, image) in images.items():
        arrays[key] = _as_uint16_chw(crop.apply(image), file)
    if derives_linear_target(row):
        developed, metadata = packed, row
        if raw_target(row):  # the long exposure, with its own levels and metadata
            metadata = read_raw(images["target"][0])
            if metadata.mosaic.shape != mosaic.shape:
                raise CacheError(f"pair {row['pair_id']}: its target raw is {metadata.width}×{metadata.height} but "
                                 f"its raw is {mosaic.shape[1]}×{mosaic.shape[0]}; only pixel-aligned pairs can be "
                                 "cached")
            developed, _ = _packed_area(metadata.mosaic, metadata.black_level, metadata.white_level, metadata.cfa,
                                        area)
        arrays["linear_target"] = classic_linear_target(developed, metadata)
    return arrays


def _packed_area(mosaic: np.ndarray, black_level, white_level, cfa: str, area: tuple[int, ...]):
    """The normalised mosaic's ``area`` (top, left, height, width) packed to RGGB (float32), and its CfaCrop."""
    top, left, height, width = area
    normalized = normalize(mosaic, black_level, white_level)[top:top + height, left:left + width]
    packed, crop = pack_rggb(normalized, shift_cfa(cfa, top, left))
    return packed.astype(np.float32), crop


def classic_linear_target(packed: np.ndarray, row: dict[str, Any] | RawCapture) -> np.ndarray:
    """uint16 3×2h×2w linear sRGB of the classic pipeline on a packed raw: the preparation step
    :func:`isp_bench.develop.classic_linear_rgb` on the batch of the raw and the metadata of ``row`` (a manifest row
    or the RawCapture it was read from; :func:`isp_bench.batches.frame_batch`)."""
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
