"""Every manifest path stays inside its root: write, read/validate, publish, load, to_root and the
training cache refuse `..`, absolute paths, drive letters, backslashes and symlinks leading out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from isp_bench.data.cache import preprocess_row
from isp_bench.hub import load, publish
from isp_bench.hub._format import DATA_DIR, META_KEY
from isp_bench.ingest import ingest
from isp_bench.manifest import (
    META_PREFIX,
    SCHEMA,
    SCHEMA_VERSION,
    Manifest,
    UnsafePathError,
    check_manifest_path,
    content_hash,
    read_manifest,
    validate_manifest,
    write_manifest,
)

UNSAFE = ["../escaped.dng", "a/../../escaped.dng", "/etc/passwd", "C:\\Users\\x.dng", "C:/x.dng", "c:x.dng",
          "scene\\input.dng", "./a.dng", "a//b.dng", "a/b/", ".", "", "a/./b.dng", "a\x00.dng"]


@pytest.fixture(scope="module")
def manifest_path(synth_root, tmp_path_factory) -> Path:
    return ingest("synth", synth_root, tmp_path_factory.mktemp("paths") / "synth.parquet", workers=1,
                  progress=False).manifest.path


@pytest.fixture(scope="module")
def rows(manifest_path) -> list[dict]:
    return read_manifest(manifest_path).rows()


def _forge(path: Path, rows: list[dict]) -> Path:
    """A manifest written without write_manifest (as a hand-made or hostile file would be), hash included."""
    meta = {"schema_version": SCHEMA_VERSION, "dataset": "synth", "isp_bench_version": "0", "num_rows": len(rows),
            "content_hash": content_hash(rows), "errors": [], "source": {}}
    table = pa.Table.from_pylist(rows, schema=SCHEMA).replace_schema_metadata(
        {f"{META_PREFIX}{k}": json.dumps(v, sort_keys=True) for k, v in meta.items()})
    pq.write_table(table, path)
    return path


def _escaping(rows: list[dict], column: str = "input_path", value: str = "../escaped.dng") -> list[dict]:
    return [{**rows[0], column: value}] + rows[1:]


@pytest.mark.parametrize("rel", UNSAFE)
def test_unsafe_paths_are_refused_with_the_row_and_column(rel):
    with pytest.raises(UnsafePathError) as info:
        check_manifest_path(rel, pair_id="0001_x/long", column="target_path")
    assert "pair '0001_x/long', column target_path" in str(info.value)


@pytest.mark.parametrize("rel", ["a.dng", "0000_monitor_astronaut/short_exposure.dng", "a..b/c..dng", "..a/b"])
def test_safe_paths_pass(rel, tmp_path):
    assert check_manifest_path(rel, pair_id="p", column="input_path") is None
    assert check_manifest_path(rel, pair_id="p", column="input_path", root=tmp_path) == tmp_path / rel


@pytest.mark.parametrize("column", ["input_path", "target_path", "linear_target_path"])
def test_write_manifest_refuses_a_path_outside_the_root(rows, tmp_path, column):
    with pytest.raises(UnsafePathError, match=f"pair '{rows[0]['pair_id']}', column {column}: path '../escaped.dng'"):
        write_manifest(tmp_path / "m.parquet", _escaping(rows, column), dataset="synth")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["../escaped.dng", "/tmp/escaped.dng", "C:\\escaped.dng"])
def test_read_and_validate_refuse_a_forged_manifest(rows, synth_root, tmp_path, value):
    forged = _forge(tmp_path / "forged.parquet", _escaping(rows, value=value))
    with pytest.raises(UnsafePathError, match=f"forged.parquet: pair '{rows[0]['pair_id']}', column input_path"):
        read_manifest(forged)
    with pytest.raises(UnsafePathError):
        validate_manifest(forged, synth_root)


def _link_first_input(synth_root: Path, rows, tmp_path: Path, store: str) -> Path:
    """A copy of the synthetic root whose first input is a symlink to the same file moved to ``store``
    (a folder of ``tmp_path``: a path starting with ``root/`` stays inside the copy)."""
    root = tmp_path / "root"
    shutil.copytree(synth_root, root)
    inside = root / rows[0]["input_path"]
    moved = tmp_path / store / inside.name
    moved.parent.mkdir(parents=True)
    shutil.move(inside, moved)
    inside.symlink_to(moved)
    return root


@pytest.fixture
def symlinked_root(synth_root, rows, tmp_path) -> Path:
    """A copy of the synthetic root whose first input is a symlink to an identical file outside it."""
    return _link_first_input(synth_root, rows, tmp_path, "outside")


def test_validate_refuses_a_symlink_leading_out(manifest_path, rows, symlinked_root):
    with pytest.raises(UnsafePathError, match=f"pair '{rows[0]['pair_id']}', column input_path: .* through a symlink"):
        validate_manifest(manifest_path, symlinked_root)


def test_a_symlink_inside_the_root_is_fine(manifest_path, rows, synth_root, tmp_path):
    root = _link_first_input(synth_root, rows, tmp_path, "root/store")
    assert validate_manifest(manifest_path, root).ok


def test_publish_refuses_escaping_rows_and_symlinks_before_writing(rows, manifest_path, synth_root, symlinked_root,
                                                                   tmp_path):
    forged = _forge(tmp_path / "forged.parquet", _escaping(rows))
    (tmp_path / "escaped.dng").write_bytes(b"a file beside the root")
    table = pq.read_table(forged)
    unchecked = Manifest(forged, table, {k.decode()[len(META_PREFIX):]: json.loads(v)
                                         for k, v in table.schema.metadata.items()})  # as built in memory
    for manifest in (forged, unchecked):
        with pytest.raises(UnsafePathError, match="column input_path: path '../escaped.dng'"):
            publish(manifest, synth_root, tmp_path / "hf-1", workers=1, progress=False)
        assert not list((tmp_path / "hf-1").glob(f"{DATA_DIR}/*.parquet"))
    with pytest.raises(UnsafePathError, match="through a symlink"):
        publish(manifest_path, symlinked_root, tmp_path / "hf-2", workers=1, progress=False)
    assert not list((tmp_path / "hf-2").glob(f"{DATA_DIR}/*.parquet"))


def _tamper(folder: Path, column: str, value: str) -> str:
    """Rewrite the published folder's one shard with row 0's ``column`` set to ``value`` and a matching hash."""
    (shard,) = sorted((folder / DATA_DIR).glob("*.parquet"))
    table = pq.read_table(shard)
    values = table.column(column).to_pylist()
    values[0] = value
    table = table.set_column(table.schema.get_field_index(column), table.schema.field(column), [values])
    manifest_rows = pa.Table.from_arrays(table.select(SCHEMA.names).columns, schema=SCHEMA).to_pylist()
    payload = json.loads(table.schema.metadata[META_KEY])
    payload["manifest"]["content_hash"] = content_hash(manifest_rows)
    pq.write_table(table.replace_schema_metadata({**table.schema.metadata, META_KEY: json.dumps(payload)}), shard)
    return manifest_rows[0]["pair_id"]


@pytest.fixture
def small_published(rows, synth_root, tmp_path) -> Path:
    small = write_manifest(tmp_path / "small.parquet", rows[:2], dataset="synth")
    return publish(small.path, synth_root, tmp_path / "hf", workers=1, progress=False).folder


@pytest.mark.parametrize("value", ["../escaped.dng", "../../.bashrc", "/tmp/x.dng", "C:\\x.dng"])
def test_load_refuses_a_published_row_outside_the_root(small_published, value):
    pair_id = _tamper(small_published, "target_path", value)
    with pytest.raises(UnsafePathError, match=f"pair '{pair_id}', column target_path"):
        load(small_published)


def test_to_root_refuses_to_write_through_a_symlink_leading_out(small_published, rows, tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    scene = rows[0]["input_path"].split("/")[0]
    out.mkdir()
    (out / scene).symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(UnsafePathError, match=f"pair '{rows[0]['pair_id']}', column input_path: .* through a symlink"):
        load(small_published).to_root(out)
    assert list(elsewhere.iterdir()) == []
    assert load(small_published).to_root(tmp_path / "clean").is_file()  # the same rows into a plain folder


def test_the_training_cache_refuses_a_symlink_leading_out(rows, symlinked_root):
    with pytest.raises(UnsafePathError, match="column input_path"):
        preprocess_row(symlinked_root, rows[0])
