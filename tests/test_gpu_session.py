"""benchmarks/gpu_session.py's bookkeeping of side-by-side runs: the rows a GPU session brings back. Its whole
sequence is rehearsed on the CPU with ``python benchmarks/gpu_session.py --out DIR --rehearse`` (a minute)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _gpu_session():
    spec = importlib.util.spec_from_file_location("gpu_session", REPO / "benchmarks" / "gpu_session.py")
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # its dataclasses look it up there
    spec.loader.exec_module(module)
    return module


def test_an_ended_run_gets_one_row_from_its_record_and_its_progress(tmp_path):
    gpu_session = _gpu_session()
    session = gpu_session.Session(tmp_path, deadline_s=60, rehearse=True)
    folder = tmp_path / "runs" / "synth-unet-smoke-seed0-00000000" / "reproduction"
    folder.mkdir(parents=True)
    (folder / "training.json").write_text(json.dumps({
        "steps": 4, "losses": [0.5, 0.2, 40.0, 0.1], "grad_norms": [1.0, 2.0, 300.0, None], "seconds": 3.0}))
    (folder / "result.json").write_text(json.dumps({"metrics": {"psnr": {"mean": 25.0},
                                                               "delta_e76": {"mean": 8.0}}}))
    runs = gpu_session.Concurrent(session, ["unet"], {"unet": {"folder": str(folder), "patches": 4}}, 1)
    child = gpu_session.Child("unet", subprocess.Popen([sys.executable, "-c", "pass"]), folder, time.time(),
                              points=[(time.time(), 1.0, 2, 4)])  # progress read before the run ended
    child.process.wait()
    runs.end(child, "stopped")
    row = runs.rows["unet"]
    assert (row["status"], row["run"], row["steps_reached"], row["steps"]) == (
        "finished", "synth-unet-smoke-seed0-00000000/reproduction", 4, 4)  # the record's, not the progress's
    assert (row["max_loss"], row["max_loss_step"], row["median_loss"]) == (40.0, 2, 0.35)
    assert (row["max_grad_norm"], row["max_grad_norm_step"], row["median_grad_norm"]) == (300.0, 2, 2.0)
    assert row["test"] == {"psnr": 25.0, "delta_e76": 8.0}

    (folder / "training.json").unlink()  # cut off: only the progress says how far it got
    runs.end(child, "stopped")
    assert (runs.rows["unet"]["steps_reached"], runs.rows["unet"]["steps"]) == (2, 4)
