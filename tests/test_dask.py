"""The stages on a Dask cluster (issue 14): the same bytes as the local backend, and faults that cost
nothing. One 2-worker LocalCluster (processes) serves the whole module: starting one costs seconds."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from isp_bench.parallel import DEFAULT_MAX_TRIES as MAX_TRIES

# Read by the worker processes (they inherit this environment when the cluster starts): see
# isp_bench.ingest._crash_for_tests. Inert until a test writes a marker there.
CRASH_DIR = Path(os.environ["ISP_BENCH_TEST_CRASH_DIR"])  # made by conftest.py
CRASHING_FILE = "0002_monitor_chelsea/short_exposure.dng"


@pytest.fixture(scope="module")
def cluster():
    dask = pytest.importorskip("dask")
    from distributed import LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):  # as executor("dask") sets it
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    yield cluster.scheduler_address
    cluster.close()


@pytest.fixture()
def tree(synth_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(synth_root, root)
    return root


@pytest.fixture(scope="module")
def local_manifest(synth_root, tmp_path_factory):
    from isp_bench.ingest import ingest

    return ingest("synth", synth_root, tmp_path_factory.mktemp("local") / "synth.parquet", workers=1,
                  progress=False).manifest


def _crash_on(rel: str, mode: str) -> Path:
    folder, name = rel.split("/")
    marker = CRASH_DIR / f"{folder}__{name}"
    marker.write_text(mode)
    return marker


def test_ingest_qa_publish_score_on_dask_write_the_local_bytes(cluster, synth_root, local_manifest, tmp_path):
    from isp_bench.hub.publish import publish
    from isp_bench.ingest import ingest
    from isp_bench.metrics.score import score_folders
    from isp_bench.qa.run import qa_manifest

    out = tmp_path / "dask" / "synth.parquet"
    result = ingest("synth", synth_root, out, scheduler=cluster, progress=False)
    assert result.files_inspected == 24 and not result.errors
    assert out.read_bytes() == local_manifest.path.read_bytes()
    assert result.manifest.content_hash == local_manifest.content_hash

    qa_local = qa_manifest(local_manifest.path, synth_root, tmp_path / "qa-local.parquet")
    qa_dask = qa_manifest(local_manifest.path, synth_root, tmp_path / "qa-dask.parquet", scheduler=cluster)
    assert (tmp_path / "qa-dask.parquet").read_bytes() == (tmp_path / "qa-local.parquet").read_bytes()
    assert qa_dask.flagged == qa_local.flagged

    shards = {}
    for name, scheduler in (("local", "local"), ("dask", cluster)):
        folder = publish(local_manifest.path, synth_root, tmp_path / f"pub-{name}", shard_mb=0.2, workers=1,
                         scheduler=scheduler, progress=False).folder
        shards[name] = {p.name: p.read_bytes() for p in sorted((folder / "data").iterdir())}
    assert len(shards["local"]) > 2 and shards["dask"] == shards["local"]
    again = publish(local_manifest.path, synth_root, tmp_path / "pub-local", shard_mb=0.2, scheduler=cluster,
                    progress=False)  # the completed shards are verified (sha256) on the cluster and kept
    assert (again.shards_written, again.shards_reused) == (0, len(shards["local"]))

    scene = synth_root / "0001_real_astronaut"
    pred, target = tmp_path / "pred", tmp_path / "target"
    pred.mkdir(), target.mkdir()
    for i, (a, b) in enumerate([("medium_exposure.jpg", "medium_exposure.jpg"),
                                ("medium_exposure_linear.png", "medium_exposure_linear.png")]):
        shutil.copy(scene / a, pred / f"{i}{Path(a).suffix}")
        shutil.copy(synth_root / "0003_real_chelsea" / b, target / f"{i}{Path(b).suffix}")
    local = score_folders(pred, target, ["psnr", "ssim", "delta_e76"])
    on_dask = score_folders(pred, target, ["psnr", "ssim", "delta_e76"], scheduler=cluster)
    assert local.equals(on_dask) and np.isfinite(local["psnr"]).all()


def test_worker_killed_mid_ingest_loses_no_file(cluster, tree, local_manifest, tmp_path):
    from isp_bench.ingest import ingest

    marker = _crash_on(CRASHING_FILE, "once")
    result = ingest("synth", tree, tmp_path / "synth.parquet", scheduler=cluster, progress=False)
    assert not marker.exists()  # the worker reading it died once, and the task ran again elsewhere
    assert not result.errors and len(result.manifest) == len(local_manifest)
    assert result.manifest.content_hash == local_manifest.content_hash


def test_file_that_kills_every_reader_is_reported_broken_on_dask(cluster, tree, tmp_path):
    from isp_bench.ingest import ingest

    marker = _crash_on(CRASHING_FILE, "always")
    try:
        result = ingest("synth", tree, tmp_path / "synth.parquet", scheduler=cluster, progress=False)
    finally:
        marker.unlink()
    assert [(e["path"], e["error"]) for e in result.errors] == [(CRASHING_FILE, "WorkerDied")]
    assert f"died {MAX_TRIES} time(s)" in result.errors[0]["message"]
    assert result.skipped_pairs == ["0002_monitor_chelsea/low_light"]
    assert len(result.manifest) == 11


def test_submission_scored_on_dask_writes_the_local_bytes(cluster, tree, local_manifest, tmp_path):
    from isp_bench.data import PairDataset
    from isp_bench.evaluate.scoring import as_16bit, prediction_path
    from isp_bench.evaluate.submission import submit_predictions
    from isp_bench.images import read_image, write_png

    test = PairDataset(local_manifest.path, tree, "test", cache_dir=tree / ".isp-bench-cache", progress=False)
    for row in test.rows:  # a darker rendering of each target file
        write_png(prediction_path(tmp_path / "pred", row["pair_id"]),
                  as_16bit(0.8 * read_image(tree / row["target_path"]) / 255.0))
    runs = {name: submit_predictions(tmp_path / "pred", dataset="synth", name="darker", runs_dir=tmp_path / name,
                                     manifest=local_manifest.path, root=tree, metrics=("psnr", "ssim"),
                                     scheduler=scheduler, progress=False)
            for name, scheduler in (("local", "local"), ("dask", cluster))}
    per_image = {name: (run / "per_image.parquet").read_bytes() for name, run in runs.items()}
    assert per_image["dask"] == per_image["local"]
    scores = pd.read_parquet(runs["dask"] / "per_image.parquet")
    assert len(scores) == len(test) >= 2 and np.isfinite(scores["psnr"]).all() and (scores["psnr"] < 30).all()


def test_a_run_builds_its_preprocessing_cache_on_dask_with_the_local_bytes(cluster, tree, local_manifest, tmp_path):
    """`isp-bench run --scheduler ...`: the cache is built on the cluster, the same files as a local
    build, and the scheduler is not part of the run (same run id, same scores)."""
    from isp_bench.cli import main

    local_root = tmp_path / "local-data"
    shutil.copytree(tree, local_root)
    runs = {}
    for name, root, scheduler in (("local", local_root, "local"), ("dask", tree, cluster)):
        assert main(["run", "--model", "classic", "--budget", "smoke", "--manifest", str(local_manifest.path),
                     "--root", str(root), "--runs", str(tmp_path / f"runs-{name}"), "--metrics", "psnr",
                     "--leaderboards", str(tmp_path / f"boards-{name}"), "--scheduler", scheduler, "--quiet"]) == 0
        runs[name] = next((tmp_path / f"runs-{name}").iterdir())
    caches = {name: {p.name: p.read_bytes() for p in (root / ".isp-bench-cache").iterdir()}
              for name, root in (("local", local_root), ("dask", tree))}
    assert len(caches["local"]) >= 3 and caches["dask"] == caches["local"]
    assert runs["dask"].name == runs["local"].name
    scores = {name: pd.read_parquet(run / "per_image.parquet").drop(columns="seconds") for name, run in runs.items()}
    assert scores["dask"].equals(scores["local"])  # all but the inference time
