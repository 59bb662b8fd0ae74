"""``isp_bench.hub.load``: a published dataset (local folder or Hub repository) back as a
manifest-equivalent table plus on-demand access to each pair's files, decoded into RawCapture.

The shards are read with pyarrow directly (memory-mapped, column-projected): the table holds
only the manifest columns, and a pair's file bytes are read from its row group when asked for,
so loading a 100 GB dataset costs the metadata, not the pixels. The rows' content hash is
recomputed and must equal the manifest hash the shards carry.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from isp_bench.errors import IspBenchError
from isp_bench.files import atomic_write_bytes, sha256_file
from isp_bench.hub._format import (
    FILE_SOURCES,
    LINEAR_TARGET_COLUMN,
    META_KEY,
    RAW_COLUMN,
    TARGET_COLUMN,
)
from isp_bench.manifest import (
    COLUMNS,
    META_PREFIX,
    SCHEMA,
    Manifest,
    check_manifest_path,
    check_manifest_paths,
    content_hash,
    write_manifest,
)

_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


class HubLoadError(IspBenchError):
    """A published dataset cannot be found or does not match the manifest it claims to hold."""


class PublishedDataset:
    """A published dataset opened for reading.

    Attributes:
        folder: the local dataset folder (a Hub snapshot for repository ids).
        manifest: a :class:`isp_bench.manifest.Manifest` equivalent to the one published (same
            rows, same schema, same metadata and content hash); ``manifest.table`` is the table.
        splits: split name → shard files, as the card's ``configs`` declare.
    """

    def __init__(self, folder: Path, splits: dict[str, list[Path]]):
        self.folder = folder
        self.splits = splits
        self._files: dict[Path, pq.ParquetFile] = {}
        self._where: dict[str, tuple[Path, int, int]] = {}
        parts, meta = [], None
        for split, shards in sorted(splits.items()):
            for shard in shards:
                pf = self._file(shard)
                kv = pf.schema_arrow.metadata or {}
                if META_KEY not in kv:
                    raise HubLoadError(f"{shard}: no isp-bench metadata; this shard was not written by isp-bench "
                                       "publish")
                shard_meta = json.loads(kv[META_KEY])["manifest"]
                if meta is None:
                    meta = shard_meta
                elif shard_meta.get("content_hash") != meta.get("content_hash"):
                    raise HubLoadError(f"{shard}: belongs to another manifest (hash {shard_meta.get('content_hash')}"
                                       f" ≠ {meta.get('content_hash')}); the folder mixes two exports, republish it")
                for group in range(pf.num_row_groups):
                    table = pf.read_row_group(group, columns=list(COLUMNS))
                    for offset, pair_id in enumerate(table.column("pair_id").to_pylist()):
                        self._where[pair_id] = (shard, group, offset)
                    parts.append(table)
        if meta is None:
            raise HubLoadError(f"{folder}: its card declares no shards; republish the dataset")
        table = pa.concat_tables(parts) if parts else SCHEMA.empty_table()
        table = table.sort_by("pair_id")
        try:
            table = pa.Table.from_arrays(table.columns, schema=SCHEMA)  # manifest schema (nullability included)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise HubLoadError(f"{folder}: its rows do not fit the manifest schema ({exc}); republish it") from exc
        rows = table.to_pylist()
        if content_hash(rows) != meta.get("content_hash"):
            raise HubLoadError(f"{folder}: the rows it holds do not hash to the manifest hash its shards record "
                               f"({meta.get('content_hash')}); shards are missing or were edited, republish it")
        check_manifest_paths(rows, where=folder)
        table = table.replace_schema_metadata({f"{META_PREFIX}{k}": json.dumps(v, sort_keys=True)
                                               for k, v in meta.items()})
        self.manifest = Manifest(folder / "manifest.parquet", table, meta)
        self._cache: tuple[tuple[Path, int, str], pa.Array] | None = None

    # -- metadata -----------------------------------------------------------------------------

    @property
    def table(self) -> pa.Table:
        return self.manifest.table

    @property
    def dataset(self) -> str:
        return self.manifest.dataset

    @property
    def content_hash(self) -> str:
        return self.manifest.content_hash

    def __len__(self) -> int:
        return len(self.manifest)

    def pair_ids(self, split: str | None = None) -> list[str]:
        ids = self.table.column("pair_id").to_pylist()
        if split is None:
            return ids
        return [i for i, s in zip(ids, self.table.column("split").to_pylist()) if s == split]

    def row(self, pair_id: str) -> dict[str, Any]:
        shard, group, offset = self._locate(pair_id)
        return self._file(shard).read_row_group(group, columns=list(COLUMNS)).slice(offset, 1).to_pylist()[0]

    # -- files --------------------------------------------------------------------------------

    def _file(self, shard: Path) -> pq.ParquetFile:
        if shard not in self._files:
            self._files[shard] = pq.ParquetFile(shard, memory_map=True)
        return self._files[shard]

    def _locate(self, pair_id: str) -> tuple[Path, int, int]:
        try:
            return self._where[pair_id]
        except KeyError:
            raise HubLoadError(f"{self.folder}: no pair {pair_id!r} in this dataset") from None

    def _bytes(self, pair_id: str, column: str) -> bytes | None:
        shard, group, offset = self._locate(pair_id)
        key = (shard, group, column)
        if self._cache is None or self._cache[0] != key:  # keep one row group's column: sequential reads are cheap
            self._cache = (key, self._file(shard).read_row_group(group, columns=[column]).column(0).combine_chunks())
        value = self._cache[1][offset].as_py()
        return value["bytes"] if isinstance(value, dict) else value  # Image feature: {"bytes", "path"}

    def raw_bytes(self, pair_id: str) -> bytes:
        """The input raw file's original bytes."""
        return self._bytes(pair_id, RAW_COLUMN)

    def target_bytes(self, pair_id: str) -> bytes | None:
        return self._bytes(pair_id, TARGET_COLUMN)

    def linear_target_bytes(self, pair_id: str) -> bytes | None:
        return self._bytes(pair_id, LINEAR_TARGET_COLUMN)

    def raw(self, pair_id: str):
        """The pair's raw file decoded into a :class:`isp_bench.raw.RawCapture`.

        ``read_raw`` reads a path (exifread and tifffile read the container's tags from the file,
        LibRaw the pixels), so the bytes go to a temporary file with the original file name, which
        also keeps the container detection by extension; it is removed at once.
        """
        from isp_bench.raw import read_raw

        rel = self.row(pair_id)["input_path"]
        with tempfile.TemporaryDirectory(prefix="isp-bench-raw-") as tmp:
            path = Path(tmp) / Path(rel).name
            path.write_bytes(self.raw_bytes(pair_id))
            return read_raw(path)

    def target(self, pair_id: str) -> np.ndarray | None:
        """The target image as stored (bit depth kept, RGB order), via :func:`isp_bench.images.read_image`."""
        return self._image(pair_id, TARGET_COLUMN, "target_path")

    def linear_target(self, pair_id: str) -> np.ndarray | None:
        return self._image(pair_id, LINEAR_TARGET_COLUMN, "linear_target_path")

    def _image(self, pair_id: str, column: str, path_column: str) -> np.ndarray | None:
        from isp_bench.images import read_image

        data = self._bytes(pair_id, column)
        if data is None:
            return None
        rel = self.row(pair_id)[path_column]
        with tempfile.TemporaryDirectory(prefix="isp-bench-img-") as tmp:
            path = Path(tmp) / Path(rel).name
            path.write_bytes(data)
            return read_image(path)

    def iter_files(self, split: str | None = None) -> Iterator[tuple[dict[str, Any], dict[str, bytes | None]]]:
        """Yield ``(row, {"raw": bytes, "target": bytes, "linear_target": bytes})`` shard by shard, one
        row group in memory at a time."""
        wanted = [split] if split is not None else sorted(self.splits)
        for name in wanted:
            for shard in self.splits[name]:
                pf = self._file(shard)
                for group in range(pf.num_row_groups):
                    table = pf.read_row_group(group)
                    for record in table.to_pylist():
                        files = {c: record.pop(c) for c, _, _ in FILE_SOURCES}
                        if isinstance(files[TARGET_COLUMN], dict):
                            files[TARGET_COLUMN] = files[TARGET_COLUMN]["bytes"]
                        yield record, files

    def to_root(self, out: str | os.PathLike, *, manifest_name: str | None = None) -> Path:
        """Write every file back under its original relative path in ``out`` and the manifest beside
        them (``out/<manifest_name or dataset>.parquet``): a dataset root + manifest pair that every
        isp-bench stage reads. Files already present with the right sha256 are kept. Returns the
        manifest path."""
        import hashlib

        out = Path(out)
        for record, files in self.iter_files():
            for column, path_col, sha_col in FILE_SOURCES:
                data = files[column]
                if data is None:
                    continue
                dest = check_manifest_path(record[path_col], pair_id=record["pair_id"], column=path_col, root=out)
                if hashlib.sha256(data).hexdigest() != record[sha_col]:
                    raise HubLoadError(f"{self.folder}: pair {record['pair_id']!r}: the {column} bytes do not match "
                                       f"their sha256 {record[sha_col]}; the shard is corrupt, re-download it")
                if dest.is_file() and dest.stat().st_size == len(data) and sha256_file(dest) == record[sha_col]:
                    continue
                atomic_write_bytes(dest, data)
        path = out / f"{manifest_name or self.dataset}.parquet"
        manifest = write_manifest(path, self.table.to_pylist(), dataset=self.dataset,
                                  errors=self.manifest.meta.get("errors"),
                                  source_meta=self.manifest.meta.get("source"))
        if manifest.content_hash != self.content_hash:  # pragma: no cover - guarded by the load-time check
            raise HubLoadError(f"{path}: rewritten manifest hash differs from the published one")
        return path


def _resolve(name_or_folder: str | os.PathLike, revision: str | None, cache_dir: str | None) -> Path:
    path = Path(name_or_folder)
    if path.is_dir():
        return path.resolve()
    name = str(name_or_folder)
    if _REPO_ID.match(name) and not path.exists():
        from huggingface_hub import snapshot_download  # an explicit download: the one network use of load

        try:
            return Path(snapshot_download(repo_id=name, repo_type="dataset", revision=revision, cache_dir=cache_dir,
                                          allow_patterns=["README.md", "LICENSE.md", "data/*"]))
        except Exception as exc:
            raise HubLoadError(f"{name}: cannot fetch this dataset repository from the Hugging Face Hub "
                               f"({type(exc).__name__}: {exc}); check the name, your network and `hf auth login`, "
                               "or pass a local folder") from exc
    raise HubLoadError(f"{name}: neither a local dataset folder nor a Hub repository id ORG/NAME")


def load(name_or_folder: str | os.PathLike, *, config: str = "default", revision: str | None = None,
         cache_dir: str | None = None) -> PublishedDataset:
    """Open a published dataset: a folder written by :func:`isp_bench.hub.publish`, or the Hub
    repository ``ORG/NAME`` it was uploaded to (downloaded with ``huggingface_hub``, which honours
    ``HF_HUB_OFFLINE`` and its cache).

    The shards are the ones the card's ``configs`` declare for ``config``, exactly as
    ``datasets.load_dataset`` would read them.
    """
    from isp_bench.hub.card import data_files

    folder = _resolve(name_or_folder, revision, cache_dir)
    splits = data_files(folder, config)
    missing = [s for s, files in splits.items() if not files]
    if missing:
        raise HubLoadError(f"{folder}: the card declares split(s) {missing} but no shard matches them; the export is "
                           "incomplete, rerun `isp-bench publish` (it resumes)")
    return PublishedDataset(folder, splits)


__all__ = ["HubLoadError", "PublishedDataset", "load"]
