"""isp-bench ingest: caching, resuming, broken files, byte-identical re-runs, the CLI."""

from __future__ import annotations

import json
import os
import signal
import shutil
import threading
import time
from pathlib import Path

import pytest

import isp_bench.ingest as ingest_module
from isp_bench.cli import main
from isp_bench.datasets import get_source, list_sources
from isp_bench.errors import DatasetError, TruncatedFileError, UnknownNameError
from isp_bench.ingest import cache_path_for, ingest
from isp_bench.manifest import read_manifest
from isp_bench.parallel import DEFAULT_MAX_TRIES, LocalPoolExecutor, SchedulerError
from isp_bench.raw import read_raw, render_raw

# Read by worker processes (inherited when the fork server starts, after collection): see
# isp_bench.ingest._crash_for_tests. Inert until a test writes a marker there.
CRASH_DIR = Path(os.environ["ISP_BENCH_TEST_CRASH_DIR"])  # made by conftest.py


@pytest.fixture()
def tree(synth_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(synth_root, root)
    return root


def test_rerun_reuses_everything_and_writes_identical_bytes(tree, tmp_path):
    out = tmp_path / "m" / "synth.parquet"
    first = ingest("synth", tree, out, workers=2, progress=False)
    assert first.files_inspected == 24 and first.files_reused == 0 and not first.errors
    before = out.read_bytes()
    second = ingest("synth", tree, out, workers=2, progress=False)
    assert second.files_inspected == 0 and second.files_reused == 24
    assert out.read_bytes() == before
    # another output folder, no cache: the same bytes again
    third = ingest("synth", tree, tmp_path / "other" / "synth.parquet", workers=1, progress=False)
    assert (tmp_path / "other" / "synth.parquet").read_bytes() == before and third.files_inspected == 24


def test_interrupted_ingest_resumes(tree, tmp_path, monkeypatch):
    out = tmp_path / "synth.parquet"
    calls = {"n": 0}
    real = ingest_module.inspect_file

    def interrupted(*args):
        calls["n"] += 1
        if calls["n"] == 10:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(ingest_module, "inspect_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ingest("synth", tree, out, workers=1, progress=False)
    assert not out.exists() and cache_path_for(out).exists()
    monkeypatch.setattr(ingest_module, "inspect_file", real)
    resumed = ingest("synth", tree, out, workers=1, progress=False)
    assert resumed.files_reused == 9 and resumed.files_inspected == 15
    assert len(resumed.manifest) == 12


def test_changed_file_is_rehashed(tree, tmp_path):
    out = tmp_path / "synth.parquet"
    ingest("synth", tree, out, workers=1, progress=False)
    (tree / "0001_real_astronaut" / "medium_exposure.jpg").write_bytes(
        (tree / "0003_real_chelsea" / "medium_exposure.jpg").read_bytes())
    again = ingest("synth", tree, out, workers=1, progress=False)
    assert again.files_inspected == 1
    row = next(r for r in again.manifest.rows() if r["pair_id"] == "0001_real_astronaut/well_lit")
    chelsea = next(r for r in again.manifest.rows() if r["pair_id"] == "0003_real_chelsea/well_lit")
    assert row["target_sha256"] == chelsea["target_sha256"]


def test_broken_file_in_the_middle_is_reported_not_fatal(tree, tmp_path):
    dng = tree / "0002_monitor_chelsea" / "short_exposure.dng"
    dng.write_bytes(dng.read_bytes()[: dng.stat().st_size // 2])  # truncated download
    (tree / "0004_monitor_coffee" / "medium_exposure_linear.png").unlink()  # missing file
    out = tmp_path / "synth.parquet"
    result = ingest("synth", tree, out, workers=2, progress=False)
    assert [(e["path"], e["error"]) for e in result.errors] == [
        ("0002_monitor_chelsea/short_exposure.dng", "TruncatedFileError"),
        ("0004_monitor_coffee/medium_exposure_linear.png", "MissingFile"),
    ]
    assert sorted(result.skipped_pairs) == ["0002_monitor_chelsea/low_light", "0004_monitor_coffee/low_light",
                                            "0004_monitor_coffee/well_lit"]
    manifest = read_manifest(out)
    assert len(manifest) == 9 and [e["path"] for e in manifest.errors] == [e["path"] for e in result.errors]
    report = json.loads(out.with_suffix(".errors.json").read_text())
    assert str(dng) in report["errors"][0]["message"]


@pytest.mark.parametrize("read", [read_raw, lambda path: render_raw(path, output_bps=16)], ids=["read", "render"])
def test_libraw_diagnosis_goes_into_the_error_not_onto_stderr(tree, capfd, read):
    dng = tree / "0002_monitor_chelsea" / "short_exposure.dng"
    dng.write_bytes(dng.read_bytes()[: dng.stat().st_size // 2])
    with pytest.raises(TruncatedFileError, match=r"Input/output error'; LibRaw: Unexpected end of file\)") as info:
        read(dng)
    assert str(dng) in str(info.value)
    assert capfd.readouterr().err == ""  # LibRaw's C code printed "<path>: Unexpected end of file" there


def test_a_dataset_whose_every_pair_is_broken_writes_no_manifest_and_keeps_the_old_one(tree, tmp_path):
    out = tmp_path / "synth.parquet"
    ingest("synth", tree, out, workers=1, progress=False)
    before = out.read_bytes()
    for dng in tree.glob("*/*.dng"):
        dng.write_bytes(b"not a raw file")
    with pytest.raises(DatasetError, match=r"synth.parquet: not written: every one of the 12 pairs found has a file "
                                           r"that could not be read \(12 files; report: .*synth.errors.json"):
        ingest("synth", tree, out, workers=1, progress=False)
    assert out.read_bytes() == before
    assert len(json.loads(out.with_suffix(".errors.json").read_text())["errors"]) == 12


def test_an_incomplete_download_is_ingested_with_a_warning_naming_what_is_missing(tree, tmp_path, capsys):
    gone = tree / "0004_monitor_coffee" / "medium_exposure_linear.png"
    gone.unlink()
    result = ingest("synth", tree, tmp_path / "synth.parquet", workers=1, progress=False)
    assert len(result.manifest) == 10 and not result.layout.complete
    assert "0004_monitor_coffee/medium_exposure_linear.png" in result.layout.missing
    assert main(["ingest", "synth", "--root", str(tree), "--out", str(tmp_path / "synth.parquet"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err == (f"warning: {tree} is incomplete against the published synth layout (files: 23 of 24; missing: "
                   "0004_monitor_coffee/medium_exposure_linear.png); the "
                   f"manifest holds what is there. `isp-bench datasets synth --root {tree}` lists what is missing\n")


def test_an_unusable_manifest_path_fails_before_any_file_is_read(tree, tmp_path):
    (tmp_path / "a-file").write_bytes(b"")
    with pytest.raises(DatasetError, match="is a folder; --out names the manifest file to write"):
        ingest("synth", tree, tmp_path, workers=1, progress=False)
    with pytest.raises(DatasetError, match="a-file/synth.parquet: cannot write the manifest there"):
        ingest("synth", tree, tmp_path / "a-file" / "synth.parquet", workers=1, progress=False)
    assert not cache_path_for(tmp_path / "synth.parquet").exists()  # nothing was inspected


def test_rotated_targets_are_flagged(tree, tmp_path):
    rows = ingest("synth", tree, tmp_path / "s.parquet", workers=1, progress=False).manifest.rows()
    meta = json.loads((tree / "synth.json").read_text())
    portrait = {s["scene"] for s in meta["scenes"] if s["portrait"]}
    for row in rows:
        rotated = row["scene"] in portrait
        assert ("rotated_target" in row["flags"]) == rotated
        assert row["target_rot90"] == (1 if rotated else 0)


def test_registry_errors_and_bad_roots(tmp_path):
    assert "synth" in list_sources()
    with pytest.raises(UnknownNameError, match="Did you mean 'synth'"):
        get_source("synthh")
    with pytest.raises(DatasetError, match="not a folder"):
        ingest("synth", tmp_path / "nope", tmp_path / "x.parquet", progress=False)
    with pytest.raises(DatasetError, match="scenes.csv: missing"):
        ingest("synth", tmp_path, tmp_path / "x.parquet", progress=False)


def test_cli_ingest_show_validate(tree, tmp_path, capsys):
    out = tmp_path / "cli.parquet"
    assert main(["ingest", "synth", "--root", str(tree), "--out", str(out), "--workers", "1", "--quiet"]) == 0
    assert "12 pairs" in capsys.readouterr().out
    assert main(["manifest", "show", str(out)]) == 0
    assert "pairs per split/role" in capsys.readouterr().out
    assert main(["manifest", "validate", str(out), "--root", str(tree), "--quiet"]) == 0
    (tree / "0000_monitor_astronaut" / "medium_exposure.dng").unlink()
    assert main(["manifest", "validate", str(out), "--root", str(tree), "--quiet"]) == 1
    assert "missing: 0000_monitor_astronaut/medium_exposure.dng" in capsys.readouterr().out
    assert main(["ingest", "nosuch", "--root", str(tree)]) == 2
    assert "unknown dataset source 'nosuch'" in capsys.readouterr().err


# ----------------------------------------------------------------------------- faults (issue 14 item 3)

CRASHING_FILE = "0002_monitor_chelsea/short_exposure.dng"


def _crash_on(rel: str, mode: str) -> Path:
    folder, name = rel.split("/")
    marker = CRASH_DIR / f"{folder}__{name}"
    marker.write_text(mode)
    return marker


def test_local_pool_replaces_a_dead_worker_and_loses_no_file(tree, tmp_path):
    """Before issue 14 a worker that died ended the ingest with BrokenProcessPool."""
    reference = ingest("synth", tree, tmp_path / "ref.parquet", workers=1, progress=False).manifest
    marker = _crash_on(CRASHING_FILE, "once")
    result = ingest("synth", tree, tmp_path / "synth.parquet", workers=2, progress=False)
    assert not marker.exists() and not result.errors
    assert result.manifest.content_hash == reference.content_hash


def _return_then_die(item: int) -> int:
    """Item 0 returns at once and its worker exits 0.3 s later; the others take 0.1 s."""
    if item == 0:
        threading.Timer(0.3, os._exit, (1,)).start()
    else:
        time.sleep(0.1)
    return 2 * item


def test_local_pool_survives_a_worker_dying_while_the_caller_holds_a_result():
    """The pool can break between two waits, while the caller works on a result: the next submit then raises
    BrokenProcessPool (an ingest once failed so, at random); the items are submitted again to a fresh pool."""
    results = {}
    with LocalPoolExecutor(2) as pool:
        for item, value in pool.map_unordered(_return_then_die, range(10)):
            if not results:
                time.sleep(1.0)  # item 0's worker exits meanwhile
            results[item] = value
    assert results == {i: 2 * i for i in range(10)}


def _interrupted(item):
    os.kill(os.getpid(), signal.SIGINT)  # what a terminal's Ctrl-C sends every process of the group
    time.sleep(0.05)
    return item


def test_local_pool_workers_leave_ctrl_c_to_the_parent():
    """A worker interrupted while it handed back a result died holding the pool's queue lock, and the parent's
    shutdown waited for ever (2 of 13 Ctrl-Cs of a 2-worker ingest hung so, before it saved its cache): workers
    ignore SIGINT, the parent alone stops."""
    with LocalPoolExecutor(2) as pool:
        assert dict(pool.map_unordered(_interrupted, range(4))) == {i: i for i in range(4)}


def test_file_that_kills_every_reader_is_reported_broken_and_cached_files_resume(tree, tmp_path):
    out = tmp_path / "synth.parquet"
    marker = _crash_on(CRASHING_FILE, "always")
    try:
        result = ingest("synth", tree, out, workers=2, progress=False)
    finally:
        marker.unlink()
    assert [(e["path"], e["error"]) for e in result.errors] == [(CRASHING_FILE, "WorkerDied")]
    assert f"died {DEFAULT_MAX_TRIES} time(s)" in result.errors[0]["message"]
    assert result.skipped_pairs == ["0002_monitor_chelsea/low_light"] and len(result.manifest) == 11
    # the 23 good files are cached; the crashing one is read again (it may have been a passing fault)
    again = ingest("synth", tree, out, workers=2, progress=False)
    assert (again.files_reused, again.files_inspected) == (23, 1) and not again.errors


def test_a_worker_that_cannot_see_the_root_names_the_missing_file(tmp_path):
    with pytest.raises(DatasetError, match=r"scene/a\.dng: not found by the worker process .*shared file system"):
        ingest_module.inspect_file(str(tmp_path), "scene/a.dng", "raw")


def test_unknown_scheduler_is_refused_before_reading(tree, tmp_path):
    with pytest.raises(SchedulerError, match=r"--scheduler 'slurm': expected one of local, dask, tcp://HOST:PORT"):
        ingest("synth", tree, tmp_path / "synth.parquet", scheduler="slurm", progress=False)
    assert not (tmp_path / "synth.parquet").exists()
