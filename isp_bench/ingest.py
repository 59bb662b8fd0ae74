"""``isp-bench ingest``: turn a dataset folder into a manifest.

The source lists the pairs; every referenced file is hashed and inspected (raw files through
:func:`isp_bench.raw.read_raw`, targets through their image header) in a process pool. A broken
file never stops the run: it is reported in the errors report and the manifest metadata, and its
pairs are left out. Results are cached per file (keyed by size and mtime) beside the manifest, so an
interrupted ingest resumes and a re-run on an unchanged tree re-hashes nothing and writes the
identical manifest.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from isp_bench.datasets import get_source
from isp_bench.errors import DatasetError, IspBenchError
from isp_bench.parallel import process_pool
from isp_bench.files import atomic_write_text, sha256_file
from isp_bench.manifest import Manifest, write_manifest
from isp_bench.raw import read_raw

CACHE_VERSION = 1
_CHECKPOINT_S = 5.0
SMALL_JOB_FILES = 64

# RawCapture fields copied into manifest columns.
_RAW_COLUMNS = ("container", "height", "width", "cfa", "black_level", "white_level", "wb_as_shot",
                "color_matrix_illuminant", "noise_profile", "orientation", "default_crop", "make", "model",
                "unique_camera_model", "iso", "exposure_s", "fnumber", "focal_length_mm", "datetime")


def _plain(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value


def inspect_file(root: str, rel: str, kind: str) -> dict[str, Any]:
    """Hash and inspect one file; never raises for bad content (the error is returned instead)."""
    path = Path(root) / rel
    stat = path.stat()
    entry: dict[str, Any] = {"kind": kind, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    try:
        if kind == "raw" or kind.startswith("input:"):
            # "input:<source>": an input the source reads itself (e.g. a 16-bit PNG mosaic)
            capture = read_raw(path) if kind == "raw" else get_source(kind[len("input:"):]).read_input(path)
            meta = capture.metadata()
            meta["color_matrix"] = [v for row in meta["color_matrix"] for v in row] if meta["color_matrix"] else None
            entry["info"] = {k: _plain(meta[k]) for k in (*_RAW_COLUMNS, "color_matrix")}
            if capture.extra:
                entry["info"]["extra"] = json.loads(json.dumps(capture.extra, default=_plain))
        else:
            with Image.open(path) as image:
                image.verify()  # structure check without decoding every pixel
            with Image.open(path) as image:
                width, height = image.size
                orientation = image.getexif().get(0x0112) if image.format == "JPEG" else None
            entry["info"] = {"height": height, "width": width, "mode": image.mode,
                             "orientation": int(orientation) if orientation else None}
        entry["sha256"] = sha256_file(path)
    except IspBenchError as exc:
        entry["error"] = {"error": type(exc).__name__, "message": str(exc)}
    except Exception as exc:  # any decoder failure is this file's problem, not the run's
        entry["error"] = {"error": type(exc).__name__, "message": f"{path}: {exc}"}
    return entry


def _inspect_job(args: tuple[str, str, str]) -> tuple[str, dict[str, Any]]:
    return args[1], inspect_file(*args)


@dataclass
class IngestResult:
    manifest: Manifest
    errors: list[dict[str, str]]
    files_inspected: int
    files_reused: int
    seconds: float
    errors_path: Path | None = None
    skipped_pairs: list[str] = field(default_factory=list)


def cache_path_for(out: Path) -> Path:
    return out.with_name(f".{out.stem}.ingest-cache.json")


def _load_cache(path: Path, root: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if data.get("version") != CACHE_VERSION or data.get("root") != str(root):
        return {}
    return data.get("files", {})


def _save_cache(path: Path, root: Path, files: dict[str, dict[str, Any]]) -> None:
    atomic_write_text(path, json.dumps({"version": CACHE_VERSION, "root": str(root), "files": files}))


def ingest(
    source: str,
    root: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    workers: int | None = None,
    progress: bool = True,
    options: dict[str, Any] | None = None,
    lists_only: bool = False,
) -> IngestResult:
    """Ingest the dataset at ``root`` with the registered ``source`` and write its manifest.

    ``out`` defaults to ``manifests/<source>.parquet``; ``workers`` to the number of CPUs, or 1
    (in-process) when fewer than 64 files need inspecting. Returns the manifest and the list of files that could not be ingested.
    ``options`` configure the source (e.g. ``{"model": "Nexus 6P"}`` for hdrplus). ``lists_only``
    builds the manifest from the split lists the source ships, reading no file (see :func:`_lists_only_row`).
    """
    from tqdm import tqdm

    started = time.perf_counter()
    options = {k: v for k, v in (options or {}).items() if v is not None}
    src = get_source(source, **options, **({"lists_only": True} if lists_only else {}))
    out = Path(out) if out is not None else Path("manifests") / f"{source}.parquet"
    if lists_only:
        if not src.supports_lists_only:
            raise DatasetError(f"source {source!r} cannot build a manifest from lists alone (no shipped list "
                               "names every pair); ingest the downloaded files with --root")
        return _ingest_lists_only(src, root, out, options, started)
    root = Path(root).resolve()
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset root is not a folder; pass the folder you downloaded with --root")
    records = list(src.pairs(root))
    if not records:
        raise DatasetError(f"{root}: source {source!r} found no pairs; expected layout: {src.layout}")

    input_kind = "raw" if src.input_kind == "raw" else f"input:{src.name}"
    wanted: dict[str, str] = {}
    for rec in records:
        wanted[rec.input_path] = input_kind
        if rec.target_path is not None:
            wanted.setdefault(rec.target_path, "raw" if src.target_kind == "raw" else "image")
        if rec.linear_target_path is not None:
            wanted.setdefault(rec.linear_target_path, "image")

    cache_file = cache_path_for(out)
    cache = _load_cache(cache_file, root)
    results: dict[str, dict[str, Any]] = {}
    todo: list[tuple[str, str, str]] = []
    for rel, kind in sorted(wanted.items()):
        path = root / rel
        if not path.is_file():
            results[rel] = {"kind": kind, "error": {"error": "MissingFile",
                                                    "message": f"{path}: listed by the {source} layout but missing; "
                                                               "complete the download"}}
            continue
        stat = path.stat()
        hit = cache.get(rel)
        if hit and hit.get("kind") == kind and hit.get("size") == stat.st_size and hit.get("mtime_ns") == stat.st_mtime_ns:
            results[rel] = hit
        else:
            todo.append((str(root), rel, kind))
    reused = len(wanted) - len(todo)

    fresh = {rel: e for rel, e in results.items() if "mtime_ns" in e}
    if workers is None:  # starting a pool costs ~1 s: not worth it for a handful of files
        workers = 1 if len(todo) < SMALL_JOB_FILES else os.cpu_count() or 1
    n_workers = max(1, min(workers, len(todo) or 1))
    bar = tqdm(total=len(wanted), initial=len(wanted) - len(todo), desc=f"ingest {source}", unit="file",
               disable=not progress)
    last_save = time.monotonic()

    def record(rel: str, entry: dict[str, Any]) -> None:
        nonlocal last_save
        results[rel] = fresh[rel] = entry
        bar.update()
        if time.monotonic() - last_save > _CHECKPOINT_S:
            _save_cache(cache_file, root, fresh)
            last_save = time.monotonic()

    try:
        if n_workers == 1:
            for job in todo:
                record(*_inspect_job(job))
        else:
            with process_pool(n_workers, preload=("isp_bench.ingest",)) as pool:
                pending = {pool.submit(_inspect_job, job) for job in todo}
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        record(*future.result())
    finally:
        bar.close()
        _save_cache(cache_file, root, fresh)  # an interrupted run resumes from here

    errors = [{"path": rel, **results[rel]["error"]} for rel in sorted(results) if "error" in results[rel]]
    broken = {e["path"] for e in errors}
    rows, skipped = [], []
    for rec in records:
        files = [rec.input_path, rec.target_path, rec.linear_target_path]
        if broken.intersection(f for f in files if f):
            skipped.append(rec.pair_id)
            continue
        rows.append(_row(src, rec, results))

    out.parent.mkdir(parents=True, exist_ok=True)
    manifest = write_manifest(
        out, rows, dataset=src.name, errors=errors,
        source_meta={"source": src.name, "licence": src.licence, "pairs_found": len(records),
                     "pairs_skipped": len(skipped), **({"options": options} if options else {})},
    )
    errors_path = out.with_suffix(".errors.json")
    if errors:
        atomic_write_text(errors_path, json.dumps({"dataset": src.name, "errors": errors,
                                                   "skipped_pairs": skipped}, indent=1) + "\n")
    elif errors_path.exists():
        errors_path.unlink()
    return IngestResult(manifest, errors, files_inspected=len(todo), files_reused=reused,
                        seconds=time.perf_counter() - started, errors_path=errors_path if errors else None,
                        skipped_pairs=skipped)


def _file_columns(prefix: str, rel: str | None, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if rel is None:
        return {f"{prefix}_path": None, f"{prefix}_bytes": None, f"{prefix}_sha256": None}
    entry = results[rel]
    return {f"{prefix}_path": rel, f"{prefix}_bytes": entry["size"], f"{prefix}_sha256": entry["sha256"]}


def _record_columns(src, rec, *extra_flags: str) -> dict[str, Any]:
    """The columns a row takes from its PairRecord and source (not from the files)."""
    return {
        "pair_id": rec.pair_id, "dataset": src.name, "scene": rec.scene, "split": rec.split, "role": rec.role,
        "protocol_split": rec.protocol_split, "subset": rec.subset, "target_device": rec.target_device,
        "licence_class": rec.licence_class or src.licence_class, "flags": [*rec.flags, *extra_flags],
        "exposure_ratio": rec.exposure_ratio, "filled_from_dataset": [],
    }


def _row(src, rec, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    raw_info = results[rec.input_path]["info"]
    row: dict[str, Any] = {
        **_record_columns(src, rec),
        **_file_columns("input", rec.input_path, results),
        **_file_columns("target", rec.target_path, results),
        **_file_columns("linear_target", rec.linear_target_path, results),
        **{k: raw_info[k] for k in (*_RAW_COLUMNS, "color_matrix")},
    }
    _apply_fill(row, rec)
    input_extra = dict(raw_info.get("extra") or {})
    row["flags"] += input_extra.pop("flags", [])
    row["filled_from_dataset"] += input_extra.pop("filled_from_dataset", [])
    target_info = results[rec.target_path]["info"] if rec.target_path else None
    row = src.finish_row(row, target_info)
    extra = {**rec.extra, **({"input": input_extra} if input_extra else {})}
    row["extra"] = json.dumps(extra, sort_keys=True, default=_plain) if extra else None
    return row


def _apply_fill(row: dict[str, Any], rec) -> None:
    """Dataset-level values for columns the input file does not carry, named in filled_from_dataset."""
    for key, value in rec.fill.items():
        if row.get(key) is None and value is not None:
            row[key] = value
            row["filled_from_dataset"].append(key)


# A lists-only row references files that were not read: the v1 schema requires input_bytes and
# input_sha256, so these sentinels say "not hashed" and every row carries the flag below.
NOT_HASHED_BYTES = 0
NOT_HASHED_SHA256 = ""
NOT_HASHED_FLAG = "not_hashed"


def _ingest_lists_only(src, root, out: Path, options: dict[str, Any], started: float) -> IngestResult:
    records = list(src.pairs(Path(root).resolve() if root is not None else None))
    if not records:
        raise DatasetError(f"source {src.name!r}: its lists name no pairs for options {options or 'none'}")
    rows = []
    for rec in records:
        row: dict[str, Any] = {c: None for c in _RAW_COLUMNS}
        row.update({
            **_record_columns(src, rec, NOT_HASHED_FLAG),
            "input_path": rec.input_path, "input_bytes": NOT_HASHED_BYTES, "input_sha256": NOT_HASHED_SHA256,
            "target_path": rec.target_path, "linear_target_path": rec.linear_target_path, "color_matrix": None,
        })
        _apply_fill(row, rec)
        row["extra"] = json.dumps(rec.extra, sort_keys=True) if rec.extra else None
        rows.append(row)
    out.parent.mkdir(parents=True, exist_ok=True)
    manifest = write_manifest(
        out, rows, dataset=src.name, errors=[],
        source_meta={"source": src.name, "licence": src.licence, "pairs_found": len(records), "pairs_skipped": 0,
                     "lists_only": True, **({"options": options} if options else {})},
    )
    return IngestResult(manifest, [], files_inspected=0, files_reused=0, seconds=time.perf_counter() - started)
