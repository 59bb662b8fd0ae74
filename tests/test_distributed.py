"""torchrun on CPUs (Gloo): two processes train what one process trains with the same global batch,
rank 0 alone writes, evaluation is sharded and gathered, and a killed job resumes in one process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from isp_bench.distributed import rank_items
from isp_bench.ingest import ingest
from isp_bench.runs import run_benchmark

REPO = Path(__file__).resolve().parents[1]
STEPS = 12
# SGD: the weights follow the gradients linearly, so two ranks' averaged gradients (equal to the single
# process's up to float rounding) give weights equal to ~1e-7. Adam divides by the root of the running
# squared gradient, which turns rounding in near-zero gradients into steps of the learning rate's size.
RECIPE = f"""model: unet
paper: a tiny unet schedule for the distributed tests
inputs: [raw]
optimizer: {{name: sgd, lr: 0.05, momentum: 0.9}}
stages:
  - name: train
    objective: srgb_l1
    lr_decay_at: [0.5]
budgets:
  smoke: {{steps: {STEPS}, batch_size: 2, patch: [32, 32], validation: {{frames: 1, crop: [32, 32]}}}}
  short: {{steps: 10, batch_size: 2, patch: [64, 64]}}
  paper: {{steps: 100, batch_size: 2, patch: [64, 64]}}
  standard: {{steps: 100, batch_size: 2, patch: [64, 64]}}
"""
TIMEOUT_S = 120


@pytest.fixture(scope="module")
def data(tmp_path_factory, synth_root):
    base = tmp_path_factory.mktemp("distributed")
    root = shutil.copytree(synth_root, base / "synth")  # a run writes its cache into the dataset root
    manifest = ingest("synth", root, base / "synth.parquet", workers=1, progress=False).manifest.path
    recipe = base / "tinyunet.yaml"
    recipe.write_text(RECIPE)
    single = run_benchmark(recipe=str(recipe), budget="smoke", device="cpu", runs_dir=base / "single",
                           manifest=manifest, root=root, metrics=("psnr",), progress=False)
    return {"root": root, "manifest": manifest, "recipe": recipe, "single": single}


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _options(data, runs: Path) -> list[str]:
    return ["--recipe", str(data["recipe"]), "--budget", "smoke", "--device", "cpu", "--manifest",
            str(data["manifest"]), "--root", str(data["root"]), "--runs", str(runs), "--quiet"]


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "model.pt", weights_only=True)


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=0, msg=key)


def test_rank_shares_make_up_the_global_batch(monkeypatch):
    single = rank_items(3, 5, 4)
    shares = []
    for rank in (0, 1):
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("RANK", str(rank))
        shares.append(rank_items(3, 5, 4))
    assert single == list(range(12, 20))
    assert shares == [[12, 13, 16, 17], [14, 15, 18, 19]]  # per step: rank 0 the first half, rank 1 the second


def test_two_processes_train_what_one_process_trains(data, tmp_path):
    """Each rank also cuts its patches in a loader worker (the single-process run in its own process)."""
    runs = tmp_path / "runs"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
               "isp_bench", "run", *_options(data, runs), "--metrics", "psnr", "--leaderboards", str(tmp_path / "lb"),
               "--loader-workers", "1"]
    done = subprocess.run(command, env=_env(), cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("run: ") == 1  # rank 0 alone reports
    (run_dir,) = runs.iterdir()
    assert run_dir.name == data["single"].name  # the world size is not part of the run id
    assert sorted(p.name for p in run_dir.glob("*.json")) == ["config.json", "result.json", "training.json"]
    _assert_same_weights(_weights(run_dir), _weights(data["single"]))
    result = json.loads((run_dir / "result.json").read_text())
    single = json.loads((data["single"] / "result.json").read_text())
    assert result["training"]["distributed"] == {"world_size": 2, "per_rank_batch": [1]}
    assert result["provenance"]["processes"] == 2
    record = json.loads((run_dir / "training.json").read_text())
    assert record["loader_workers"] == 1
    losses = record["losses"]
    assert losses == pytest.approx(json.loads((data["single"] / "training.json").read_text())["losses"], abs=1e-5)
    # evaluation: the four test frames were rendered two per rank and gathered in split order
    frame, single_frame = (pd.read_parquet(d / "per_image.parquet") for d in (run_dir, data["single"]))
    assert list(frame["pair_id"]) == list(single_frame["pair_id"]) and len(frame) == 4
    assert frame["psnr"].to_numpy() == pytest.approx(single_frame["psnr"].to_numpy(), abs=1e-3)
    assert result["metrics"]["psnr"]["mean"] == pytest.approx(single["metrics"]["psnr"]["mean"], abs=1e-3)
    assert (tmp_path / "lb" / "synth.md").exists()


def _stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (state, parent pid, ...); [] for no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def _process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it (torchrun starts its workers in sessions of their own, so a
    signal to the job's process group does not reach them)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = _stat(int(stat.parent.name))
        if fields:  # else gone meanwhile
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo.extend(parents.get(tree[-1], []))
    return tree


def _signal_tree(pid: int, sig: int) -> None:
    for member in _process_tree(pid):
        try:
            os.kill(member, sig)
        except ProcessLookupError:
            pass


def _kill_after_step(data, runs: Path, step: int) -> tuple[Path | None, int, str]:
    """`isp-bench train --nproc 2` (the shortcut that launches torchrun), killed (every process of it) once a
    checkpoint is at ``step`` or later: the job is stopped (SIGSTOP) whenever a new checkpoint appears, so
    it cannot run on while the checkpoint is read. Returns the checkpoint, its step and the job's stderr."""
    job = subprocess.Popen([sys.executable, "-m", "isp_bench", "train", *_options(data, runs), "--nproc", "2"],
                           env=_env(), cwd=runs.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           start_new_session=True)
    checkpoint, deadline, at, seen = None, time.monotonic() + TIMEOUT_S, 0, None
    try:
        while time.monotonic() < deadline and job.poll() is None:
            found = list(runs.glob("*/checkpoint.pt"))
            stamp = found[0].stat().st_mtime_ns if found else None
            if stamp is not None and stamp != seen:
                _signal_tree(job.pid, signal.SIGSTOP)
                checkpoint, seen = found[0], stamp
                at = torch.load(checkpoint, weights_only=True)["step"]
                if at >= step:
                    break
                _signal_tree(job.pid, signal.SIGCONT)
            time.sleep(0.005)  # a 12-step job on a quiet machine takes well under a second
    finally:
        _signal_tree(job.pid, signal.SIGKILL)
        job.wait(timeout=30)
    return checkpoint, at, job.stderr.read().decode()[-3000:]


def test_a_killed_two_process_job_resumes_in_one_process(data, tmp_path):
    for attempt in range(3):  # a loaded machine may let the whole job finish between two looks: try again
        runs = tmp_path / f"attempt{attempt}" / "runs"
        runs.mkdir(parents=True)
        checkpoint, at, stderr = _kill_after_step(data, runs, 2)
        if checkpoint is not None and at < STEPS:
            break
    assert checkpoint is not None and 2 <= at < STEPS, stderr
    assert not (checkpoint.parent / "model.pt").exists()
    resumed = run_benchmark(recipe=str(data["recipe"]), budget="smoke", device="cpu", runs_dir=runs,
                            manifest=data["manifest"], root=data["root"], evaluate=False, progress=False)
    assert resumed == checkpoint.parent
    record = json.loads((resumed / "training.json").read_text())
    assert record["resumed_from"]["step"] >= 2 and record["distributed"]["world_size"] == 1
    _assert_same_weights(_weights(resumed), _weights(data["single"]))


def test_terminating_the_launcher_stops_every_worker(data, tmp_path):
    """`isp-bench train --nproc 2` passes a SIGTERM on to torchrun and waits while it stops its workers
    (they run in sessions of their own: killing the launcher alone would leave them training)."""
    for attempt in range(3):  # a loaded machine may let the whole job finish before it is seen: try again
        runs = tmp_path / f"attempt{attempt}" / "runs"
        runs.mkdir(parents=True)
        job = subprocess.Popen([sys.executable, "-m", "isp_bench", "train", *_options(data, runs), "--nproc", "2"],
                               env=_env(), cwd=runs.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + TIMEOUT_S
        while not list(runs.glob("*/checkpoint.pt")) and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        _signal_tree(job.pid, signal.SIGSTOP)  # hold the job still while its processes are listed
        if job.poll() is None:
            break
    tree = _process_tree(job.pid)
    assert job.poll() is None and len(tree) >= 4, job.stderr.read().decode()[-3000:]  # launcher, torchrun, 2 ranks
    job.terminate()  # pending until the job runs on: it cannot finish on its own first
    _signal_tree(job.pid, signal.SIGCONT)
    assert job.wait(timeout=TIMEOUT_S) != 0
    alive = [pid for pid in tree if _stat(pid) and _stat(pid)[0] != "Z"]  # zombies have stopped
    assert not alive, f"still running after the launcher returned: {alive}"


def test_a_batch_that_does_not_split_over_nproc_is_one_line_before_torchrun(tmp_path, monkeypatch, capsys):
    """unet's smoke batch of 1 with --nproc 2 ended in 47 lines of torchrun traceback (the reason twice, inside)
    and a run folder holding only config.json."""
    from isp_bench.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["run", "--model", "unet", "--budget", "smoke", "--nproc", "2"]) == 2
    err = capsys.readouterr().err
    assert err == ("isp-bench: error: --nproc 2: stage train's global batch_size 1 (unet, budget smoke) does not "
                   "split over that many processes; use a process count that divides it\n")
    assert list(tmp_path.iterdir()) == []
