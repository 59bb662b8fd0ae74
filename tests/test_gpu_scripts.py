"""The GPU session's scripts, on the CPU: gpu_session.py's bookkeeping of side-by-side runs (the rows a GPU
session brings back; its whole sequence is rehearsed with ``python benchmarks/gpu_session.py --out DIR
--rehearse``, a minute) and gradient_check.py's comparison with a float64 reference."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def _load(script: str):
    """A benchmark script as a module."""
    spec = importlib.util.spec_from_file_location(script, REPO / "benchmarks" / f"{script}.py")
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # its dataclasses look it up there
    spec.loader.exec_module(module)
    return module


def test_an_ended_run_gets_one_row_from_its_record_and_its_progress(tmp_path):
    gpu_session = _load("gpu_session")
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


def test_the_gradient_check_passes_float32_and_flags_a_gradient_that_turned(tmp_path):
    from isp_bench.ingest import ingest
    from isp_bench.synth import SynthConfig, generate

    root = generate(tmp_path / "synth", SynthConfig(scenes=4, height=96, width=128), workers=1, progress=False)
    manifest = ingest("synth", root, tmp_path / "synth.parquet", workers=1, progress=False).manifest
    gradient_check = _load("gradient_check")
    [row] = gradient_check.check_model("unet", "smoke", "cpu", ["fp32", "bf16"], manifest, root)
    fp32, bf16 = row["precisions"]["fp32"], row["precisions"]["bf16"]
    assert fp32["loss"] == pytest.approx(row["reference_loss"], rel=1e-5)
    assert fp32["cosine"] > 1 - 1e-9 and fp32["norm_ratio"] == pytest.approx(1, abs=1e-5)
    assert 0.99 < bf16["cosine"] < 1 - 1e-9 and not bf16["suspect"]  # rounded, not wrong

    reference = {"a": torch.tensor([3.0, 4.0]), "b": torch.tensor([1e-12, 0.0])}
    turned = {"a": torch.tensor([4.0, -3.0]), "b": torch.tensor([0.0, 1e-12])}  # orthogonal: cosine 0
    verdict = gradient_check.compare(turned, reference)
    assert (verdict["cosine"], verdict["norm_ratio"], verdict["suspect"]) == (pytest.approx(0), pytest.approx(1), True)
    assert verdict["worst_parameter"] == "a"  # b's reference gradient is negligible: no cosine of its own


def test_colour_cast_separates_a_white_balance_error_from_the_rest():
    """benchmarks/colour_cast.py: a prediction that is the target with its linear channels scaled is a pure
    white-balance cast: the per-channel gains found undo the scaling, and nothing is left after them; a cast
    that mixes channels is left by the gains and removed by the 3×3 matrix; the ΔE76 is the metric's."""
    from isp_bench.colorimetry import srgb_decode, srgb_encode
    from isp_bench.metrics import get_metric

    colour_cast = _load("colour_cast")
    target = np.random.default_rng(0).uniform(0.05, 0.95, (32, 48, 3))
    scaled = srgb_encode(srgb_decode(target) * [0.8, 1.0, 0.9])
    figures = colour_cast.cast(scaled, target)
    np.testing.assert_allclose(figures["channel_gains"], [1.25, 1.0, 1 / 0.9], atol=1e-4)
    assert figures["delta_e76"] == pytest.approx(get_metric("delta_e76")(scaled, target))
    assert figures["delta_e76"] > 2 and figures["delta_e76_after_channel_gains"] < 1e-3
    mixing = np.array([[0.9, 0.1, 0.0], [0.05, 0.9, 0.05], [0.0, 0.1, 0.8]])
    mixed = srgb_encode(srgb_decode(target) @ mixing.T)
    figures = colour_cast.cast(mixed, target)
    assert figures["delta_e76_after_channel_gains"] > 1 and figures["delta_e76_after_3x3"] < 1e-3


def test_colour_cast_loads_a_reproduction_with_its_runs_config(tmp_path):
    """benchmarks/colour_cast.py reads a recorded run's ``reproduction/`` folder (where a GPU session's rerun keeps its
    weights): the config is the run's, the weights the reproduction's; a folder without weights names the fix."""
    from isp_bench.models import create_model
    from isp_bench.train.trainer import FINAL

    colour_cast = _load("colour_cast")
    run = tmp_path / "synth-unet-standard-seed0-0000"
    (run / "reproduction").mkdir(parents=True)
    config = {"model": "unet", "recipe": "unet", "budget": "standard", "precision": "fp32", "stages": [{}]}
    (run / "config.json").write_text(json.dumps(config))
    torch.manual_seed(1)
    trained = create_model("unet")
    torch.save(trained.state_dict(), run / "reproduction" / FINAL)
    loaded_config, model = colour_cast.load_run(run / "reproduction")
    assert loaded_config == config and not model.training
    for name, value in trained.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    with pytest.raises(SystemExit, match="isp-bench run --recipe unet --budget standard --precision fp32"):
        colour_cast.load_run(run)
    (run / "reproduction" / FINAL).rename(run / FINAL)  # a reproduction that reused the run's weights
    _, model = colour_cast.load_run(run / "reproduction")
    assert torch.equal(model.state_dict()["net.head.weight"], trained.state_dict()["net.head.weight"])


def test_spike_probe_replays_a_run_bit_for_bit_and_measures_its_updates(tmp_path):
    """benchmarks/spike_probe.py trains a recorded run's config again: on the same machine its losses are the
    record's to the last bit, and what it reports per step is what the step did (the update's norm is the change of
    the weights; the modules' outputs were seen)."""
    from isp_bench.models import create_model
    from isp_bench.runs import resolve_dataset
    from isp_bench.train.recipe import resolve_recipe
    from isp_bench.train.trainer import train

    spike_probe = _load("spike_probe")
    config = resolve_recipe("unet", budget="smoke", dataset="synth", seed=0, precision="fp32")
    config["stages"] = [dict(config["stages"][0], steps=3)]
    manifest, root = resolve_dataset("synth", progress=False)
    torch.manual_seed(0)
    model = create_model("unet")
    head = [model.net.head.weight.detach().clone()]
    record = train(model, config, manifest, root, tmp_path / "run", progress=False,
                   on_step=lambda stage, step, loss: head.append(model.net.head.weight.detach().clone()))
    found = spike_probe.probe(config, 1, 2)
    assert found["losses"] == record["losses"]
    assert set(found["update_norm"]["net.head.weight"]) == {1, 2}
    for step in (1, 2):
        assert found["update_norm"]["net.head.weight"][step] == float((head[step + 1] - head[step]).norm())
        assert found["weight_norm"]["net.head.weight"][step] == float(head[step + 1].norm())
    assert set(found["activation_max"]["net.head"]) == {1, 2} and found["activation_max"]["net.head"][1] > 0


def test_spike_probe_probes_a_run_still_training_at_a_given_step(tmp_path, monkeypatch, capsys):
    """A run still training has no training.json yet: without --step spike_probe.py says so and exits 2; with it,
    the replay runs to that step (and two after, within the schedule) with no record to compare against."""
    from isp_bench.train.recipe import resolve_recipe

    spike_probe = _load("spike_probe")
    config = resolve_recipe("unet", budget="smoke", dataset="synth", seed=0, precision="fp32")
    config["stages"] = [dict(config["stages"][0], steps=3)]
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(SystemExit) as stopped:
        spike_probe.main([str(run)])
    assert stopped.value.code == 2 and "give --step N" in capsys.readouterr().err
    monkeypatch.setattr(sys.modules["_common"], "RESULTS", tmp_path / "results")
    assert spike_probe.main([str(run), "--step", "1", "--before", "1"]) == 0
    report = json.loads((tmp_path / "results" / "spike-probe.json").read_text())
    assert report["recorded_losses"] is None and report["replay_differs_from_step"] is None
    assert len(report["losses"]) == 3 and sorted(report["activation_max"]["net.head"]) == ["0", "1", "2"]
