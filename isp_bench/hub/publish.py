"""``isp-bench publish``: a manifest and its dataset root become a Hugging Face dataset folder.

The folder (see :mod:`isp_bench.hub._format`) loads with ``datasets.load_dataset(folder)`` exactly
as the Hub serves it once uploaded: Parquet shards per split under ``data/`` and a ``README.md``
dataset card whose ``configs`` name them.

Large sets. Shards are planned from the manifest alone (it knows every file's byte size), so the
shard count is fixed before any byte is read, and each shard is written by one worker process
that streams its pairs into row groups of at most ``row_group_mb``: peak memory is about
``workers × (row_group_mb + largest pair)``, never the whole set. Every file read is checked
against the manifest's sha256 on the way. A shard is written to a hidden temporary name and
renamed when complete; the state file records each completed shard's sha256, so an interrupted
export resumes: completed shards are verified (size + sha256) and kept, the rest are written.

Licences decide: a source whose licence forbids redistribution is refused (``RedistributionError``),
research-only licences are carried into the card (with Hub access gating) and the per-row
``licence_class`` column.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from isp_bench import __version__
from isp_bench.errors import IspBenchError
from isp_bench.files import atomic_path, atomic_write_text, sha256_file
from isp_bench.hub._format import (
    CARD_FILE,
    DATA_DIR,
    DEFAULT_ROW_GROUP_MB,
    DEFAULT_SHARD_MB,
    FILE_SOURCES,
    FORMAT_VERSION,
    LICENSE_FILE,
    MAX_ROWS_PER_GROUP,
    META_KEY,
    STATE_FILE,
    TARGET_COLUMN,
    hub_schema,
    is_shard_name,
    shard_name,
    target_is_image,
    valid_split_name,
)
from isp_bench.manifest import Manifest, check_dataset_root, check_manifest_path, check_manifest_paths, read_manifest

_ROW_OVERHEAD_BYTES = 4096  # metadata columns of one row, for shard planning
_SMALL_JOB_BYTES = 256 << 20  # below this, a process pool costs more than it saves
# zstd: metadata compresses ~10×, uncompressed raw containers shrink, and the target a scene's pairs
# share (adjacent rows) is stored about once. Parquet content-defined chunking (for Xet dedup) was
# measured on the synthetic set: +26 % size and +45 % time, as it defeats that sharing; not used.
COMPRESSION = "zstd"


class PublishError(IspBenchError):
    """A dataset cannot be published as asked (bad folder, changed files, bad split names)."""


class RedistributionError(PublishError):
    """The dataset's licence forbids redistributing its files."""


# ---------------------------------------------------------------------------------------------
# licences


def check_redistributable(source, licence_classes: Iterable[str | None] = ()) -> None:
    """Refuse (``RedistributionError``) a source whose licence forbids redistribution.

    ``source`` is a :class:`isp_bench.datasets.DatasetSource` (its ``redistributable`` flag and
    licence text decide); ``licence_classes`` are the manifest rows' classes, any of which saying
    ``no-redistribution`` also refuses.
    """
    reason = None
    if not getattr(source, "redistributable", False):
        reason = "its licence forbids redistribution"
    else:
        bad = sorted({c for c in licence_classes if c and "no-redistribution" in c})
        if bad:
            reason = f"manifest rows carry licence class(es) {bad} that forbid redistribution"
    if reason:
        raise RedistributionError(
            f"dataset {source.name!r} ({source.title}) cannot be published: {reason} "
            f"(licence: {source.licence}; class {source.licence_class!r}). Publishing would copy its files to "
            f"the Hub. Share the manifest instead (it holds metadata and splits, no pixels) and point users at "
            f"{source.url} to obtain the files themselves.")


HUB_LICENCES = (
    "apache-2.0", "mit", "openrail", "bigscience-openrail-m", "creativeml-openrail-m", "bigscience-bloom-rail-1.0",
    "bigcode-openrail-m", "afl-3.0", "artistic-2.0", "bsl-1.0", "bsd", "bsd-2-clause", "bsd-3-clause",
    "bsd-3-clause-clear", "c-uda", "cc", "cc0-1.0", "cc-by-2.0", "cc-by-2.5", "cc-by-3.0", "cc-by-4.0", "cc-by-sa-3.0",
    "cc-by-sa-4.0", "cc-by-nc-2.0", "cc-by-nc-3.0", "cc-by-nc-4.0", "cc-by-nd-4.0", "cc-by-nc-nd-3.0",
    "cc-by-nc-nd-4.0", "cc-by-nc-sa-2.0", "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0", "cdla-sharing-1.0",
    "cdla-permissive-1.0", "cdla-permissive-2.0", "wtfpl", "ecl-2.0", "epl-1.0", "epl-2.0", "etalab-2.0", "eupl-1.1",
    "agpl-3.0", "gfdl", "gpl", "gpl-2.0", "gpl-3.0", "lgpl", "lgpl-2.1", "lgpl-3.0", "isc", "lppl-1.3c", "ms-pl",
    "mpl-2.0", "odc-by", "odbl", "openrail++", "osl-3.0", "postgresql", "ofl-1.1", "ncsa", "unlicense", "zlib", "pddl",
    "lgpl-lr", "deepfloyd-if-license", "llama2", "gemma", "unknown", "other",
)
"""The licence identifiers a Hugging Face repository card takes (https://huggingface.co/docs/hub/repositories-licenses,
read 2026-12-02); anything else shows on the Hub as no licence."""


def with_declared_licence(source, licence: str | None):
    """``source`` as published. Your own captures (licence class ``user``) need the licence you publish them
    under, ``licence``, a Hugging Face licence identifier (``cc-by-4.0``, ``cc0-1.0``, ``other``, ...): it goes
    into the card and LICENSE.md; without one they are refused. Other sources carry their own licence, so
    ``licence`` is refused for them."""
    import copy

    if source.licence_class != "user":
        if licence is not None:
            raise PublishError(f"--licence {licence}: {source.name!r} is published under its own licence "
                               f"({source.licence}); --licence declares the licence of your own captures")
        return source
    if licence is None:
        raise RedistributionError(
            f"dataset {source.name!r} holds your own captures: declare the licence you publish them under with "
            "--licence ID (a Hugging Face licence identifier such as cc-by-4.0 or cc0-1.0); nothing is published "
            "without one")
    if licence not in HUB_LICENCES:
        import difflib

        near = difflib.get_close_matches(licence.lower().replace(" ", "-"), HUB_LICENCES, n=3, cutoff=0.6)
        raise PublishError(f"--licence {licence!r} is not a Hugging Face licence identifier"
                           + (f"; did you mean {' or '.join(near)}?" if near else "")
                           + " The Hub's identifiers: https://huggingface.co/docs/hub/repositories-licenses (such "
                           "as cc-by-4.0, cc0-1.0, mit; other, for a licence the Hub does not list)")
    declared = copy.copy(source)  # the card speaks to its readers, not to the isp-bench user the source addresses
    declared.title, declared.url = "Raw + camera JPEG pairs, captured by the publisher", "the publisher's own captures"
    declared.licence = f"{licence}, declared by the publisher of these captures"
    declared.hub_license, declared.redistributable = licence, True
    return declared


# ---------------------------------------------------------------------------------------------
# planning


@dataclass
class ShardPlan:
    """One shard to write: its path in the folder, its split and its pairs (in pair_id order)."""

    name: str
    split: str
    pair_ids: list[str]
    estimated_bytes: int


def _row_bytes(row: dict[str, Any]) -> int:
    return _ROW_OVERHEAD_BYTES + sum(row[c] or 0 for c in ("input_bytes", "target_bytes", "linear_target_bytes"))


def plan_shards(rows: list[dict[str, Any]], shard_mb: float = DEFAULT_SHARD_MB) -> list[ShardPlan]:
    """Cut each split's rows (pair_id order) into shards of about ``shard_mb`` megabytes.

    Uses the file sizes the manifest records, so the plan is fixed before any file is read and is
    the same on every run (which is what lets an interrupted export resume). A pair larger than a
    shard gets a shard of its own.
    """
    if shard_mb <= 0:
        raise PublishError(f"shard size {shard_mb} MB: must be positive")
    limit = int(shard_mb * 1e6)
    by_split: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: r["pair_id"]):
        by_split.setdefault(row["split"], []).append(row)
    plans: list[ShardPlan] = []
    for split in sorted(by_split):
        if not valid_split_name(split):
            raise PublishError(f"split name {split!r} is not a valid Hugging Face split name (letters, digits, "
                               "underscores, dots); rename the split in the source's split lists and re-ingest")
        groups: list[tuple[list[str], int]] = []
        ids: list[str] = []
        size = 0
        for row in by_split[split]:
            b = _row_bytes(row)
            if ids and size + b > limit:
                groups.append((ids, size))
                ids, size = [], 0
            ids.append(row["pair_id"])
            size += b
        groups.append((ids, size))
        plans += [ShardPlan(shard_name(split, i, len(groups)), split, g, s) for i, (g, s) in enumerate(groups)]
    return plans


# ---------------------------------------------------------------------------------------------
# writing one shard (runs in a worker process)


def shard_schema(manifest_meta: dict[str, Any], target_image: bool = True) -> pa.Schema:
    """The shards' Arrow schema: the ``datasets`` features metadata plus the manifest's metadata."""
    schema = hub_schema(target_image)
    payload = {"format_version": FORMAT_VERSION, "publisher_version": __version__, "manifest": manifest_meta}
    return schema.with_metadata({**(schema.metadata or {}), META_KEY: json.dumps(payload, sort_keys=True).encode()})


def write_shard(job: dict[str, Any], tick: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Write one shard: stream its pairs' files into row groups of bounded size; return its facts.

    ``job`` holds ``root``, ``folder``, ``name``, ``rows`` (manifest rows), ``row_group_bytes``,
    ``schema`` (from :func:`shard_schema`; built once by the caller, so workers never import
    ``datasets``), ``compression``. Each file is checked against the manifest's sha256.
    """
    root, folder = Path(job["root"]), Path(job["folder"])
    schema = job["schema"]
    path = folder / job["name"]
    written = 0
    with atomic_path(path, suffix=".parquet") as tmp:
        with pq.ParquetWriter(tmp, schema, compression=job["compression"], write_page_index=True) as writer:
            batch: list[dict[str, Any]] = []
            batch_bytes = 0
            for row in job["rows"]:
                record = dict(row)
                for column, path_col, sha_col in FILE_SOURCES:
                    rel = row[path_col]
                    if rel is None:
                        record[column] = None
                        continue
                    file = check_manifest_path(rel, pair_id=row["pair_id"], column=path_col, root=root)
                    try:
                        data = file.read_bytes()
                    except OSError as exc:
                        raise PublishError(f"{file}: cannot be read ({exc}); the manifest lists it for pair "
                                           f"{row['pair_id']!r}: check --root") from exc
                    if hashlib.sha256(data).hexdigest() != row[sha_col]:
                        raise PublishError(f"{file}: its sha256 differs from the manifest's (the file changed since "
                                           "ingest); run `isp-bench manifest validate` and re-ingest")
                    as_image = column == TARGET_COLUMN and pa.types.is_struct(schema.field(column).type)
                    record[column] = {"bytes": data, "path": rel} if as_image else data
                    batch_bytes += len(data)
                batch.append(record)
                if batch_bytes >= job["row_group_bytes"] or len(batch) >= MAX_ROWS_PER_GROUP:
                    writer.write_table(pa.Table.from_pylist(batch, schema=schema), row_group_size=len(batch))
                    written += batch_bytes
                    if tick:
                        tick(batch_bytes)
                    batch, batch_bytes = [], 0
            if batch:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema), row_group_size=len(batch))
                written += batch_bytes
                if tick:
                    tick(batch_bytes)
    return {"name": job["name"], "rows": len(job["rows"]), "bytes": path.stat().st_size,
            "sha256": sha256_file(path), "payload_bytes": written,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


# ---------------------------------------------------------------------------------------------
# the export


@dataclass
class PublishResult:
    folder: Path
    dataset: str
    manifest_hash: str
    rows: int
    shards: list[dict[str, Any]]
    shards_written: int
    shards_reused: int
    payload_bytes: int  # bytes of the files packed into the shards written by this run
    seconds: float
    peak_worker_rss_mb: float  # highest ru_maxrss of a process that wrote shards (this one if in-process)
    repo_url: str | None = None
    splits: dict[str, int] = field(default_factory=dict)

    @property
    def folder_bytes(self) -> int:
        return sum(s["bytes"] for s in self.shards)


def _plan_hash(manifest: Manifest, plans: list[ShardPlan], row_group_mb: float, compression: str) -> str:
    spec = {"format": FORMAT_VERSION, "manifest": manifest.content_hash, "row_group_mb": row_group_mb,
            "compression": compression, "shards": [(p.name, p.pair_ids) for p in plans]}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def _load_state(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None


def _prepare_folder(folder: Path, plan_hash: str, plans: list[ShardPlan], *, scheduler: str = "local",
                    workers: int | None = None) -> dict[str, dict[str, Any]]:
    """Check the output folder, clean what an earlier (other or interrupted) export left, and return
    the completed shards that verify (size and sha256) against the state file (hashed on
    ``scheduler``'s backend)."""
    data = folder / DATA_DIR
    state = _load_state(folder)
    existing = sorted(p for p in data.iterdir() if p.is_file()) if data.is_dir() else []
    if state is None and existing:
        raise PublishError(f"{folder}: its {DATA_DIR}/ folder holds files that isp-bench publish did not write "
                           f"(no {STATE_FILE}); publish into an empty or new folder")
    planned = {p.name for p in plans}
    same_plan = state is not None and state.get("plan_hash") == plan_hash
    completed = state.get("completed", {}) if same_plan else {}
    if not same_plan and (folder / CARD_FILE).exists():
        (folder / CARD_FILE).unlink()  # it describes another export; rewritten at the end
    to_verify: list[tuple[str, str, dict[str, Any]]] = []
    for file in existing:
        rel = f"{DATA_DIR}/{file.name}"
        if file.name.startswith(".") and file.suffix == ".parquet":
            file.unlink()  # temporary file of a shard that was being written when the export stopped
        elif is_shard_name(file.name) and rel not in planned:
            file.unlink()  # shard of another plan (other manifest, shard size, format)
        elif rel in planned and rel in completed and file.stat().st_size == completed[rel]["bytes"]:
            to_verify.append((str(file), rel, completed[rel]))
        elif rel in planned:
            file.unlink()  # a shard the state does not vouch for (or whose size changed)
    return _verify_shards(to_verify, scheduler=scheduler, workers=workers)


def _shard_intact(job: tuple[str, str, dict[str, Any]]) -> bool:
    return sha256_file(job[0]) == job[2]["sha256"]


def _verify_shards(jobs: list[tuple[str, str, dict[str, Any]]], *, scheduler: str,
                   workers: int | None) -> dict[str, dict[str, Any]]:
    """The completed shards ``(path, name, state entry)`` whose sha256 matches the state; the others
    are deleted (to be written again)."""
    from isp_bench.parallel import TaskLost, executor

    if not jobs:
        return {}
    if workers is None and scheduler == "local" and sum(j[2]["bytes"] for j in jobs) < _SMALL_JOB_BYTES:
        workers = 1
    kept: dict[str, dict[str, Any]] = {}
    with executor(scheduler, min(workers, len(jobs)) if workers else None, preload=("isp_bench.hub.publish",)) as ex:
        for (path, rel, entry), intact in ex.map_unordered(_shard_intact, jobs):
            if isinstance(intact, TaskLost):
                raise PublishError(f"{path}: hashing it: {intact}")
            if intact:
                kept[rel] = entry
            else:
                Path(path).unlink()
    return dict(sorted(kept.items()))


def _save_state(folder: Path, plan_hash: str, manifest: Manifest, completed: dict[str, dict[str, Any]]) -> None:
    state = {"format": FORMAT_VERSION, "plan_hash": plan_hash, "dataset": manifest.dataset,
             "manifest_hash": manifest.content_hash, "completed": dict(sorted(completed.items()))}
    atomic_write_text(folder / STATE_FILE, json.dumps(state, indent=1) + "\n")


def publish(
    manifest: str | os.PathLike | Manifest,
    root: str | os.PathLike,
    out: str | os.PathLike,
    *,
    repo_id: str | None = None,
    shard_mb: float = DEFAULT_SHARD_MB,
    row_group_mb: float = DEFAULT_ROW_GROUP_MB,
    workers: int | None = None,
    scheduler: str = "local",
    progress: bool = True,
    private: bool | None = None,
    token: str | None = None,
    on_shard: Callable[[dict[str, Any]], None] | None = None,
    licence: str | None = None,
) -> PublishResult:
    """Write ``manifest`` and the files under ``root`` as a Hub-ready dataset folder ``out``.

    Parameters
    ----------
    manifest : path of a manifest written by ``isp-bench ingest`` (or a read :class:`Manifest`).
    root : the dataset root the manifest's paths are relative to.
    out : the dataset repository folder to write (created; an earlier export there resumes).
    repo_id : ``ORG/NAME``: also upload the folder to this Hub dataset repository (the only
        network use; the token comes from ``token``, ``HF_TOKEN`` or ``hf auth login``).
    shard_mb : target shard size in MB (default 500, as ``push_to_hub``).
    row_group_mb : Parquet row-group size in MB (default 100); bounds each worker's memory.
    workers : processes writing shards in parallel (default: CPUs, or, on the local backend, 1 for
        sets under 256 MB).
    scheduler : backend writing the shards (:func:`isp_bench.parallel.executor`: ``local``,
        ``dask`` or ``tcp://HOST:PORT``, whose workers must see ``root`` and ``out``); the shards
        are byte-identical whichever runs them.
    on_shard : called in this process with each completed shard's facts (name, rows, bytes,
        sha256), after the resume state records it.
    licence : the licence your own captures (the ``pairs`` source, licence class ``user``) are published
        under, required for them: :func:`with_declared_licence`.

    Raises ``RedistributionError`` for sources whose licence forbids redistribution and
    ``PublishError`` for unusable folders, changed files or invalid split names.
    """
    from isp_bench.datasets import get_source
    from isp_bench.hub.card import build_card, license_text
    from isp_bench.parallel import check_scheduler

    check_scheduler(scheduler)
    started = time.perf_counter()
    if not isinstance(manifest, Manifest):
        manifest = read_manifest(manifest)
    source = with_declared_licence(get_source(manifest.dataset), licence)
    rows = manifest.rows()
    root, folder = Path(root).resolve(), Path(out).resolve()
    _check_inputs(source, rows, root, folder, row_group_mb, manifest)

    plans = plan_shards(rows, shard_mb)
    plan_hash = _plan_hash(manifest, plans, row_group_mb, COMPRESSION)
    (folder / DATA_DIR).mkdir(parents=True, exist_ok=True)
    completed = _prepare_folder(folder, plan_hash, plans, scheduler=scheduler, workers=workers)
    _save_state(folder, plan_hash, manifest, completed)

    todo = [p for p in plans if p.name not in completed]
    jobs = _shard_jobs(todo, rows, root, folder, manifest.meta, row_group_mb)
    todo_bytes = sum(p.estimated_bytes for p in todo)
    if workers is None and scheduler == "local" and todo_bytes < _SMALL_JOB_BYTES:
        workers = 1

    def record(info: dict[str, Any]) -> None:
        completed[info["name"]] = info
        _save_state(folder, plan_hash, manifest, completed)
        if on_shard is not None:
            on_shard(dict(info))

    payload, peak_rss = _write_shards(jobs, plans, record, scheduler=scheduler, workers=workers, progress=progress,
                                      desc=f"publish {manifest.dataset}")

    shards = [completed[p.name] for p in plans]
    split_rows: dict[str, int] = {}
    for p in plans:
        split_rows[p.split] = split_rows.get(p.split, 0) + len(p.pair_ids)
    atomic_write_text(folder / LICENSE_FILE, license_text(source))
    atomic_write_text(folder / CARD_FILE, build_card(manifest, source, shards, repo_id=repo_id))
    result = PublishResult(folder, manifest.dataset, manifest.content_hash, len(rows), shards,
                           shards_written=len(jobs), shards_reused=len(plans) - len(jobs), payload_bytes=payload,
                           seconds=time.perf_counter() - started, peak_worker_rss_mb=peak_rss, splits=split_rows)
    if repo_id is not None:
        result.repo_url = upload(folder, repo_id, private=private, token=token)
    return result


def _check_inputs(source, rows: list[dict[str, Any]], root: Path, folder: Path, row_group_mb: float,
                  manifest: Manifest) -> None:
    """Refuse, before anything is written, what cannot be published: the licence, a root that is
    not the manifest's (:func:`~isp_bench.manifest.check_dataset_root`), an output that is a file, a bad row-group size, manifest paths outside the root."""
    check_redistributable(source, (r["licence_class"] for r in rows))
    unlisted = [r["pair_id"] for r in rows if "licence_unlisted" in (r["flags"] or ())]
    if unlisted:
        raise RedistributionError(
            f"{len(unlisted)} of the {len(rows)} pairs have no known licence (flag licence_unlisted; the first: "
            f"{unlisted[0]}): the dataset's licence lists do not name them, or were not in the root at ingest. Put "
            "the lists in the dataset root and ingest again, or publish a manifest without those pairs")
    check_dataset_root(manifest, root)
    if folder.exists() and not folder.is_dir():
        raise PublishError(f"{folder}: exists and is not a folder; choose another --out")
    if row_group_mb <= 0:
        raise PublishError(f"row group size {row_group_mb} MB: must be positive")
    check_manifest_paths(rows, root=root, where=manifest.path)


def _shard_jobs(plans: list[ShardPlan], rows: list[dict[str, Any]], root: Path, folder: Path,
                manifest_meta: dict[str, Any], row_group_mb: float) -> list[dict[str, Any]]:
    """One :func:`write_shard` job per planned shard (the schema is built here, once)."""
    by_id = {r["pair_id"]: r for r in rows}
    schema = shard_schema(manifest_meta, target_is_image(r["target_path"] for r in rows))
    return [{"root": str(root), "folder": str(folder), "name": p.name, "rows": [by_id[i] for i in p.pair_ids],
             "row_group_bytes": int(row_group_mb * 1e6), "schema": schema, "compression": COMPRESSION}
            for p in plans]


def _write_shards(jobs: list[dict[str, Any]], plans: list[ShardPlan], record: Callable[[dict[str, Any]], None], *,
                  scheduler: str, workers: int | None, progress: bool, desc: str) -> tuple[int, float]:
    """Write the shards of ``jobs`` on the chosen backend, handing each completed shard's facts to
    ``record``; returns (payload bytes written, highest worker peak RSS in MB). In this process
    (one worker, local backend) the progress bar advances per row group, otherwise per shard."""
    from tqdm import tqdm

    from isp_bench.parallel import TaskLost, executor

    estimated = {p.name: p.estimated_bytes for p in plans}
    todo_bytes = sum(estimated[j["name"]] for j in jobs)
    total = sum(estimated.values())
    payload, peak_rss = 0, 0.0
    with tqdm(total=total, initial=total - todo_bytes, desc=desc, unit="B", unit_scale=True,
              disable=not progress) as bar:
        if not jobs:
            return payload, peak_rss
        n_workers = max(1, min(workers, len(jobs))) if workers else None
        with executor(scheduler, n_workers, preload=("pyarrow.parquet", "isp_bench.hub.publish")) as ex:
            ticked = [0]  # bytes the in-process writer has ticked for the current shard

            def tick(n: int) -> None:
                ticked[0] += n
                bar.update(n)

            in_process = ex.workers == 1 and scheduler == "local"
            job_fn = partial(write_shard, tick=tick) if in_process else write_shard
            for job, info in ex.map_unordered(job_fn, jobs):
                if isinstance(info, TaskLost):
                    raise PublishError(f"shard {job['name']}: {info}; one of its {len(job['rows'])} pairs' files "
                                       f"(first {job['rows'][0]['pair_id']!r}) crashes the reader")
                payload += info.pop("payload_bytes")
                peak_rss = max(peak_rss, info.pop("peak_rss_mb"))
                bar.update(max(0, estimated[info["name"]] - ticked[0]))
                ticked[0] = 0
                record(info)
    return payload, peak_rss


def upload(folder: str | os.PathLike, repo_id: str, *, private: bool | None = None, token: str | None = None) -> str:
    """Upload a published folder to the Hub dataset repository ``repo_id`` (created if needed).

    Hidden files (the resume state, temporaries) are not uploaded; shards in the repository that
    this export does not hold (an earlier, differently sharded version) are deleted in the same
    commit. Returns the commit URL.
    """
    from huggingface_hub import HfApi

    folder = Path(folder)
    if not (folder / CARD_FILE).is_file():
        raise PublishError(f"{folder}: no {CARD_FILE}; it is not a finished export (run `isp-bench publish` first)")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise PublishError(f"--repo-id {repo_id!r}: expected ORG/NAME (e.g. my-lab/s7-isp)")
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", exist_ok=True, private=private)
    state = _load_state(folder) or {}
    info = api.upload_folder(
        repo_id=repo_id, repo_type="dataset", folder_path=str(folder),
        ignore_patterns=[".*", "**/.*"], delete_patterns=[f"{DATA_DIR}/*.parquet"],
        commit_message=f"isp-bench {__version__}: publish {state.get('dataset', folder.name)} "
                       f"(manifest {str(state.get('manifest_hash', ''))[:16]})")
    return str(getattr(info, "commit_url", info))
