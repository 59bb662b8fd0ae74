"""``isp-bench ingest``: turn a dataset folder into a manifest.

The source lists the pairs; every referenced file is hashed and inspected (raw files through
:func:`isp_bench.raw.read_raw`, targets through their image header) on the backend ``--scheduler``
names (:mod:`isp_bench.parallel`: a local process pool, or a Dask cluster whose workers see the
dataset root at the same path). A broken file never stops the run, nor does one that kills the
process reading it (retried, then reported as ``WorkerDied``): it is reported in the errors report
and the manifest metadata, and its pairs are left out. Results are cached per file (keyed by size and mtime) beside the manifest, so an
interrupted ingest resumes and a re-run on an unchanged tree re-hashes nothing and writes the
identical manifest.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from isp_bench.datasets import get_source
from isp_bench.datasets.base import LayoutReport
from isp_bench.errors import DatasetError, IspBenchError
from isp_bench.parallel import TaskLost, check_scheduler, executor
from isp_bench.files import atomic_write_text, check_writable_folder, sha256_file
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
    """Hash and inspect one file; never raises for bad content (the error is returned instead).

    Raises :class:`DatasetError` when the file is not there: the caller listed it, so the process
    running this (a cluster worker) cannot see the dataset root.
    """
    path = Path(root) / rel
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise DatasetError(f"{path}: not found by the worker process {os.getpid()} on {socket.gethostname()}, "
                           "although the dataset root lists it; every worker must see the dataset root at the same "
                           "path (a shared file system mounted on each worker)") from None
    entry: dict[str, Any] = {"kind": kind, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    _crash_for_tests(path)
    try:
        entry["info"] = _raw_info(path, kind) if kind == "raw" or kind.startswith("input:") else _image_info(path)
        entry["sha256"] = sha256_file(path)
    except IspBenchError as exc:
        entry["error"] = {"error": type(exc).__name__, "message": str(exc)}
    except Exception as exc:  # any decoder failure is this file's problem, not the run's
        entry["error"] = {"error": type(exc).__name__, "message": f"{path}: {exc}"}
    return entry


def _raw_info(path: Path, kind: str) -> dict[str, Any]:
    """Manifest columns of a raw file, or of an ``input:<source>`` file the source reads itself
    (e.g. a 16-bit PNG mosaic)."""
    capture = read_raw(path) if kind == "raw" else get_source(kind[len("input:"):]).read_input(path)
    meta = capture.metadata()
    meta["color_matrix"] = [v for row in meta["color_matrix"] for v in row] if meta["color_matrix"] else None
    info = {k: _plain(meta[k]) for k in (*_RAW_COLUMNS, "color_matrix")}
    if capture.extra:
        info["extra"] = json.loads(json.dumps(capture.extra, default=_plain))
    return info


def _image_info(path: Path) -> dict[str, Any]:
    """Size, mode and EXIF orientation of a target image, after a structure check."""
    with Image.open(path) as image:
        image.verify()  # structure check without decoding every pixel
    with Image.open(path) as image:
        width, height = image.size
        orientation = image.getexif().get(0x0112) if image.format == "JPEG" else None
    return {"height": height, "width": width, "mode": image.mode,
            "orientation": int(orientation) if orientation else None}


def _crash_for_tests(path: Path) -> None:
    """Test hook, inert unless ``$ISP_BENCH_TEST_CRASH_DIR`` is set: reading a file for which that
    folder holds a marker named ``<file's folder name>__<file name>`` kills this process at once, as
    LibRaw has on crafted raws. A marker holding ``once`` is removed first (the process dies on the
    first try only); any other content kills every try."""
    folder = os.environ.get("ISP_BENCH_TEST_CRASH_DIR")
    if not folder:
        return
    marker = Path(folder) / f"{path.parent.name}__{path.name}"
    try:
        mode = marker.read_text().strip()
    except OSError:
        return
    if mode == "once":
        marker.unlink(missing_ok=True)
    os._exit(70)


def _inspect_job(args: tuple[str, str, str]) -> dict[str, Any]:
    return inspect_file(*args)


@dataclass
class IngestResult:
    manifest: Manifest
    errors: list[dict[str, str]]
    files_inspected: int
    files_reused: int
    seconds: float
    errors_path: Path | None = None
    skipped_pairs: list[str] = field(default_factory=list)
    layout: LayoutReport | None = None
    """The root against the source's expected layout (None for a lists-only manifest): an incomplete download
    ingests what is there, and this says what is missing."""


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
    scheduler: str = "local",
    progress: bool = True,
    options: dict[str, Any] | None = None,
    lists_only: bool = False,
) -> IngestResult:
    """Ingest the dataset at ``root`` with the registered ``source`` and write its manifest.

    ``out`` defaults to ``manifests/<source>.parquet``. ``scheduler`` picks the backend that reads
    the files (:func:`isp_bench.parallel.executor`: ``local``, ``dask`` or ``tcp://HOST:PORT``; the
    manifest is byte-identical whichever runs it); ``workers`` defaults to the number of CPUs, or,
    on the local backend, 1 (in-process) when fewer than 64 files need inspecting. A file whose
    reader process dies on every try is reported as broken (``WorkerDied``). Returns the manifest
    and the list of files that could not be ingested. ``options`` configure the source (e.g.
    ``{"model": "Nexus 6P"}`` for hdrplus). ``lists_only`` builds the manifest from the split lists
    the source ships, reading no file (see :func:`_ingest_lists_only`).
    """
    check_scheduler(scheduler)
    started = time.perf_counter()
    options = {k: v for k, v in (options or {}).items() if v is not None}
    src = get_source(source, **options, **({"lists_only": True} if lists_only else {}))
    out = Path(out) if out is not None else Path("manifests") / f"{source}.parquet"
    if out.is_dir():
        raise DatasetError(f"{out}: is a folder; --out names the manifest file to write, e.g. {out / source}.parquet")
    try:
        check_writable_folder(out.parent)  # before the files are read, not after
    except OSError as error:
        raise DatasetError(f"{out}: cannot write the manifest there ({error.strerror or error}); pass --out PATH in "
                           "a folder you can write") from None
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

    cache_file = cache_path_for(out)
    results, todo = _plan_inspection(root, _wanted_files(src, records), _load_cache(cache_file, root), source)
    if workers is None and scheduler == "local" and len(todo) < SMALL_JOB_FILES:
        workers = 1  # starting a pool costs ~1 s: not worth it for a handful of files
    _inspect_files(todo, results, root, cache_file, scheduler=scheduler, workers=workers,
                   progress=progress, desc=f"ingest {source}")
    result = _write_outputs(src, records, results, out, options, files_inspected=len(todo), started=started)
    result.layout = src.check_layout(root)
    return result


def _wanted_files(src, records) -> dict[str, str]:
    """Every file the pairs reference (relative path → kind: ``raw``, ``input:<source>`` or ``image``)."""
    input_kind = "raw" if src.input_kind == "raw" else f"input:{src.name}"
    wanted: dict[str, str] = {}
    for rec in records:
        wanted[rec.input_path] = input_kind
        if rec.target_path is not None:
            wanted.setdefault(rec.target_path, "raw" if src.target_kind == "raw" else "image")
        if rec.linear_target_path is not None:
            wanted.setdefault(rec.linear_target_path, "image")
    return wanted


def _plan_inspection(root: Path, wanted: dict[str, str], cache: dict[str, dict[str, Any]], source: str):
    """``(results, todo)``: cached entries still valid (same kind, size and mtime) and missing files
    as results; the other files as ``(root, rel, kind)`` jobs, in path order."""
    results: dict[str, dict[str, Any]] = {}
    todo: list[tuple[str, str, str]] = []
    real_root = root.resolve()
    by_lower_name: dict[Path, dict[str, str]] = {}  # per folder of missing files: its file names, by lower case
    for rel, kind in sorted(wanted.items()):
        path = root / rel
        if not path.is_file():
            if path.parent not in by_lower_name:
                by_lower_name[path.parent] = ({p.name.lower(): p.name for p in path.parent.iterdir() if p.is_file()}
                                              if path.parent.is_dir() else {})
            other = by_lower_name[path.parent].get(path.name.lower())
            fix = (f"{other} is there, the name in another case: rename it {path.name} (the layout's names are "
                   "case-sensitive)" if other else "complete the download")
            results[rel] = {"kind": kind, "error": {"error": "MissingFile",
                                                    "message": f"{path}: listed by the {source} layout but missing; "
                                                               + fix}}
            continue
        if not path.resolve().is_relative_to(real_root):  # what validate, publish and every reader would refuse
            results[rel] = {"kind": kind, "error": {
                "error": "OutsideRoot",
                "message": f"{path}: a symlink on its way leads to {path.resolve()}, outside the dataset root "
                           f"{real_root}; a manifest holds only files inside its root (a symlinked root itself is "
                           "fine): copy or move the files in, or give --root the folder that holds them"}}
            continue
        stat = path.stat()
        hit = cache.get(rel)
        if hit and hit.get("kind") == kind and hit.get("size") == stat.st_size and hit.get("mtime_ns") == stat.st_mtime_ns:
            results[rel] = hit
        else:
            todo.append((str(root), rel, kind))
    return results, todo


def _inspect_files(todo: list[tuple[str, str, str]], results: dict[str, dict[str, Any]], root: Path,
                   cache_file: Path, *, scheduler: str, workers: int | None, progress: bool, desc: str) -> None:
    """Inspect ``todo`` on the chosen backend, adding each entry to ``results`` as it arrives and
    checkpointing the per-file cache every few seconds and at the end (even when interrupted)."""
    from tqdm import tqdm

    fresh = {rel: e for rel, e in results.items() if "mtime_ns" in e}
    bar = tqdm(total=len(results) + len(todo), initial=len(results), desc=desc, unit="file", disable=not progress)
    last_save = time.monotonic()
    try:
        if todo:
            workers = max(1, min(workers, len(todo))) if workers else None
            with executor(scheduler, workers, preload=("isp_bench.ingest",)) as ex:
                for (_, rel, kind), entry in ex.map_unordered(_inspect_job, todo):
                    if isinstance(entry, TaskLost):
                        entry = {"kind": kind, "error": {"error": "WorkerDied", "message": f"{root / rel}: {entry}"}}
                    results[rel] = entry
                    if "mtime_ns" in entry:
                        fresh[rel] = entry
                    bar.update()
                    if time.monotonic() - last_save > _CHECKPOINT_S:
                        _save_cache(cache_file, root, fresh)
                        last_save = time.monotonic()
    finally:
        bar.close()
        _save_cache(cache_file, root, fresh)  # an interrupted run resumes from here


def _write_outputs(src, records, results: dict[str, dict[str, Any]], out: Path, options: dict[str, Any], *,
                   files_inspected: int, started: float) -> IngestResult:
    """The manifest (pairs whose files all inspected cleanly) and the errors report beside it."""
    errors = [{"path": rel, **results[rel]["error"]} for rel in sorted(results) if "error" in results[rel]]
    broken = {e["path"] for e in errors}
    rows, skipped = [], []
    for rec in records:
        files = [rec.input_path, rec.target_path, rec.linear_target_path]
        if broken.intersection(f for f in files if f):
            skipped.append(rec.pair_id)
            continue
        rows.append(_row(src, rec, results))

    errors_path = out.with_suffix(".errors.json")
    if errors:
        atomic_write_text(errors_path, json.dumps({"dataset": src.name, "errors": errors,
                                                   "skipped_pairs": skipped}, indent=1) + "\n")
    if not rows:  # an empty manifest would only fail later, far from the cause; an older one is kept
        raise DatasetError(f"{out}: not written: every one of the {len(records)} pairs found has a file that could "
                           f"not be read ({len(errors)} files; report: {errors_path}; the first: {errors[0]['message']})")
    manifest = write_manifest(
        out, rows, dataset=src.name, errors=errors,
        source_meta={"source": src.name, "licence": src.licence, "pairs_found": len(records),
                     "pairs_skipped": len(skipped), **({"options": options} if options else {})},
    )
    if not errors and errors_path.exists():
        errors_path.unlink()
    missing = sum(1 for e in results.values() if e.get("error", {}).get("error") == "MissingFile")
    return IngestResult(manifest, errors, files_inspected=files_inspected,
                        files_reused=len(results) - files_inspected - missing,
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
