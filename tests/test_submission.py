"""Outside submissions (`isp-bench submit`), saved predictions and `isp-bench rescore`, and the
deepisp-lowlevel recipe, on the synthetic set at the smoke budget."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from isp_bench.cli import main
from isp_bench.data import PairDataset
from isp_bench.evaluate.scoring import prediction_path
from isp_bench.errors import IspBenchError
from isp_bench.evaluate.submission import SubmissionError, rescore_run, submit_predictions
from isp_bench.files import sha256_file
from isp_bench.images import read_image, write_png
from isp_bench.ingest import ingest
from isp_bench.metrics.score import read_srgb, score_pair
from isp_bench.runs import run_benchmark
from isp_bench.synth import SynthConfig, generate
from isp_bench.train.losses import restoration_mse
from isp_bench.train.trainer import stage_needs
from isp_bench.train.recipe import resolve_recipe

STEP = 1285  # 5/255 of full scale in 16-bit codes: every pixel off by exactly this gives PSNR 20·log10(51)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    base = tmp_path_factory.mktemp("submission")
    root = generate(base / "synth", SynthConfig(scenes=8, height=96, width=128), workers=1, progress=False)
    manifest = ingest("synth", root, base / "synth.parquet", workers=1, progress=False).manifest.path
    test = PairDataset(manifest, root, "test", cache_dir=root / ".isp-bench-cache", progress=False)
    # as scored: turned to the raw's orientation and cropped to whole CFA tiles (the cache's geometry)
    targets = {test[i]["pair_id"]: np.round(test[i]["target"].permute(1, 2, 0).numpy() * 65535).astype(np.uint16)
               for i in range(len(test))}
    # as published (an outside method's output geometry): the target files, in 16-bit codes
    files = {row["pair_id"]: read_image(root / row["target_path"]).astype(np.uint16) * 257 for row in test.rows}
    turned = [row["pair_id"] for row in test.rows if row["target_rot90"]]
    return {"root": root, "manifest": manifest, "targets": targets, "files": files, "turned": turned}


def _offset_predictions(folder, images):
    """Each image with every value moved by exactly STEP codes (up, or down where up would clip)."""
    for pair_id, image in images.items():
        moved = np.where(image <= 65535 - STEP, image + STEP, image - STEP).astype(np.uint16)
        write_png(prediction_path(folder, pair_id), moved)


def _submit(data, pred, runs, **kwargs):
    return submit_predictions(pred, dataset="synth", name="offset-isp", paper="A. Author, An ISP, 2026",
                              runs_dir=runs, manifest=data["manifest"], root=data["root"],
                              **{"metrics": ("psnr", "ssim"), "progress": False, **kwargs})


def test_submit_scores_a_complete_folder_with_a_known_psnr(data, tmp_path):
    assert len(data["targets"]) == 4 and all("/" in p for p in data["targets"])  # pair ids make sub-folders
    _offset_predictions(tmp_path / "pred", data["files"])
    run_dir = _submit(data, tmp_path / "pred", tmp_path / "runs")
    result = json.loads((run_dir / "result.json").read_text())
    # 34.151 dB; the target reaches the metric through float32 (PairDataset), hence 1e-5 dB
    assert result["metrics"]["psnr"]["mean"] == pytest.approx(20 * math.log10(65535 / STEP), abs=1e-5)
    assert result["kind"] == "submitted" and result["model"] == "offset-isp" and result["split"] == "test"
    files = {f"{p}.png": sha256_file(tmp_path / "pred" / f"{p}.png") for p in data["targets"]}
    assert result["submission"] == {"name": "offset-isp", "paper": "A. Author, An ISP, 2026",
                                    "pred_dir": str((tmp_path / "pred").resolve()), "files": files,
                                    "geometry": "target_file"}
    assert run_dir.name.startswith("synth-submitted-offset-isp-test-")
    assert result["manifest"]["pairs_in_split"] == 4 and result["metrics"]["ssim"]["spec"]["name"] == "ssim"
    # the run keeps byte-identical copies; the same files submitted again are the same run, which is never
    # overwritten (a user's second submit with fewer metrics had dropped the recorded ones)
    assert {f: sha256_file(run_dir / "predictions" / f) for f in files} == files
    recorded = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    with pytest.raises(SubmissionError, match=f"{run_dir}: these predictions are already recorded there .* "
                       f"isp-bench rescore {run_dir} --metrics NAMES"):
        submit_predictions(tmp_path / "pred", dataset="synth", name="offset-isp", runs_dir=tmp_path / "runs",
                           manifest=data["manifest"], root=data["root"], metrics=("psnr",), progress=False)
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == recorded


def test_the_target_files_submitted_score_as_the_targets_themselves(data, tmp_path):
    """Predictions in the target files' geometry (one of them stored turned against the raw, all cropped to
    whole CFA tiles when scored) are brought into the scoring geometry exactly as the targets are: submitting
    the target files gives a perfect score, and rescoring the run reads its predictions the same way."""
    assert data["turned"] and any(data["files"][p].shape != data["targets"][p].shape for p in data["files"])
    for pair_id, image in data["files"].items():
        write_png(prediction_path(tmp_path / "pred", pair_id), image)
    run = submit_predictions(tmp_path / "pred", dataset="synth", name="the-targets", runs_dir=tmp_path / "runs",
                             manifest=data["manifest"], root=data["root"], metrics=("psnr", "delta_e76"),
                             progress=False)
    per_image = pd.read_parquet(run / "per_image.parquet")
    assert (per_image["psnr"] > 150).all() and (per_image["delta_e76"] < 1e-4).all()  # float32 truth: not inf
    assert rescore_run(run, ["ssim"], manifest=data["manifest"], root=data["root"],
                       progress=False)["added"]["ssim"]["mean"] == 1.0


def test_submission_scored_by_two_workers_is_byte_identical(data, tmp_path):
    """The pairs scored in a 2-process pool give the bytes of the in-process scoring: rows in split order."""
    _offset_predictions(tmp_path / "pred", data["files"])
    runs = {workers: _submit(data, tmp_path / "pred", tmp_path / f"runs-{workers}", workers=workers, scheduler="local")
            for workers in (1, 2)}
    assert (runs[1] / "per_image.parquet").read_bytes() == (runs[2] / "per_image.parquet").read_bytes()
    results = [json.loads((run / "result.json").read_text()) for run in runs.values()]
    assert results[0]["metrics"] == results[1]["metrics"] and results[0]["run_id"] == results[1]["run_id"]
    assert [list(pd.read_parquet(run / "per_image.parquet")["pair_id"]) for run in runs.values()] == [
        [row["pair_id"] for row in PairDataset(data["manifest"], data["root"], "test", cache_dir=data["root"]
                                               / ".isp-bench-cache", progress=False).rows]] * 2
    previews = [{p.name: p.read_bytes() for p in (run / "previews").iterdir()} for run in runs.values()]
    assert len(previews[0]) == 4 and previews[0] == previews[1]


def test_submit_names_every_problem_in_one_error(data, tmp_path):
    pred = tmp_path / "pred"
    _offset_predictions(pred, data["files"])
    missing_id, small_id = sorted(data["targets"])[:2]
    prediction_path(pred, missing_id).unlink()
    write_png(prediction_path(pred, small_id), np.zeros((10, 12, 3), np.uint16))
    write_png(pred / "no-such-scene" / "well_lit.png", np.zeros((96, 126, 3), np.uint16))
    with pytest.raises(SubmissionError) as info:
        _submit(data, pred, tmp_path / "runs")
    message = str(info.value)
    h, w = data["files"][small_id].shape[:2]
    assert "3 problem(s)" in message and "save each prediction in the orientation and size of its pair's " \
        "target file, as stored" in message
    assert f"missing: {prediction_path(pred, missing_id)}" in message
    assert f"extra: {pred / 'no-such-scene' / 'well_lit.png'}" in message
    target_file = f"{small_id.split('/')[0]}/medium_exposure.jpg"
    assert (f"wrong size: {prediction_path(pred, small_id)} is 12×10 (width×height), its target file {target_file} "
            f"is {w}×{h}") in message
    (turned,) = data["turned"][:1]  # the size the user reported: turned and cropped, as the truth is scored
    write_png(prediction_path(pred, turned), data["targets"][turned])
    with pytest.raises(SubmissionError, match=f"{data['targets'][turned].shape[1]}×{data['targets'][turned].shape[0]} "
                       rf"\(width×height\), its target file .* is {data['files'][turned].shape[1]}×"):
        _submit(data, pred, tmp_path / "runs")
    assert not (tmp_path / "runs").exists()  # nothing is recorded for a rejected folder


def test_a_submission_that_fails_leaves_no_run_folder(data, tmp_path, monkeypatch):
    """A user's unknown metric used to leave runs/<id>/predictions/ without a result.json (so did any error or
    Ctrl-C while scoring): the run is written beside, hidden, and becomes runs/<id> only when complete."""
    _offset_predictions(tmp_path / "pred", data["files"])
    with pytest.raises(IspBenchError, match="bogus"):
        _submit(data, tmp_path / "pred", tmp_path / "runs", metrics=("psnr", "bogus"))
    assert not (tmp_path / "runs").exists()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("isp_bench.evaluate.scoring.write_per_image", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _submit(data, tmp_path / "pred", tmp_path / "runs")
    assert list((tmp_path / "runs").iterdir()) == []
    monkeypatch.undo()
    run_dir = _submit(data, tmp_path / "pred", tmp_path / "runs")
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [run_dir.name]
    assert sorted(p.name for p in run_dir.iterdir()) == ["per_image.parquet", "predictions", "previews", "result.json"]


def test_submit_cli(data, tmp_path, capsys):
    _offset_predictions(tmp_path / "pred", data["files"])
    code = main(["submit", "--dataset", "synth", "--pred", str(tmp_path / "pred"), "--name", "offset-isp",
                 "--manifest", str(data["manifest"]), "--root", str(data["root"]), "--runs", str(tmp_path / "runs"),
                 "--metrics", "psnr", "--workers", "2", "--scheduler", "local", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0 and "psnr           34.1514" in out
    assert main(["submit", "--dataset", "synth", "--pred", str(tmp_path / "pred"), "--name", "offset-isp-lpips",
                 "--manifest", str(data["manifest"]), "--root", str(data["root"]), "--runs", str(tmp_path / "runs"),
                 "--metrics", "psnr,lpips", "--quiet"]) == 0
    unavailable = json.loads(next((tmp_path / "runs").glob("*lpips*/result.json")).read_text())["unavailable_metrics"]
    if unavailable:  # offline (no AlexNet weights): said as `run` and `score` say it
        assert f"not scored (1 metric):\n  lpips: {' '.join(unavailable['lpips'].split())}" in capsys.readouterr().out
    assert main(["submit", "--dataset", "synth", "--pred", str(tmp_path / "pred"), "--name", "bad name",
                 "--manifest", str(data["manifest"]), "--root", str(data["root"]), "--quiet"]) == 2
    assert "must be letters" in capsys.readouterr().err


def test_rescore_adds_a_metric_without_the_model(data, tmp_path, monkeypatch):
    run = run_benchmark("unet", budget="smoke", runs_dir=tmp_path / "runs", manifest=data["manifest"],
                        root=data["root"], metrics=("psnr",), progress=False)
    before = json.loads((run / "result.json").read_text())
    for weights in ("model.pt", "checkpoint.pt"):  # the model is gone: a rescore cannot use it
        (run / weights).unlink(missing_ok=True)

    def no_inference(*args, **kwargs):
        raise AssertionError("rescore ran the model")

    monkeypatch.setattr("isp_bench.evaluate.scoring.infer_full", no_inference)
    assert main(["rescore", str(run), "--metrics", "psnr,ssim", "--manifest", str(data["manifest"]), "--root",
                 str(data["root"]), "--quiet"]) == 0
    after = json.loads((run / "result.json").read_text())
    per_image = pd.read_parquet(run / "per_image.parquet")
    assert after["metrics"]["psnr"] == before["metrics"]["psnr"] and set(after["metrics"]) == {"psnr", "ssim"}
    assert [r["metrics"] for r in after["rescored"]] == [["ssim"]]
    # the added SSIM is the SSIM of the saved prediction against the pair's target, scored directly
    for pair_id, value in zip(per_image["pair_id"], per_image["ssim"]):
        direct = score_pair(read_srgb(prediction_path(run / "predictions", pair_id)),
                            data["targets"][pair_id] / 65535.0, ["ssim"])["ssim"]
        assert value == direct
    assert after["metrics"]["ssim"]["mean"] == pytest.approx(float(per_image["ssim"].mean()), abs=0)


def test_rescore_refuses_a_changed_prediction(data, tmp_path):
    run = run_benchmark("classic", budget="smoke", runs_dir=tmp_path / "runs", manifest=data["manifest"],
                        root=data["root"], metrics=("psnr",), progress=False)
    pair_id = sorted(data["targets"])[0]
    changed = prediction_path(run / "predictions", pair_id)
    recorded = json.loads((run / "result.json").read_text())["evaluation"]["prediction_files"]
    assert recorded == {f"{p}.png": sha256_file(prediction_path(run / "predictions", p)) for p in data["targets"]}
    write_png(changed, read_image(changed) // 2)
    stored = (run / "result.json").read_bytes()
    for metrics in (["psnr", "ssim"], ["ssim"]):  # a new metric alone recomputes no old one: the hashes tell
        with pytest.raises(SubmissionError, match=f"{changed}: not the prediction the run recorded"):
            rescore_run(run, metrics, manifest=data["manifest"], root=data["root"], progress=False)
    assert (run / "result.json").read_bytes() == stored
    # a run recorded before its evaluation kept hashes: an old metric recomputed still tells
    result = json.loads(stored)
    del result["evaluation"]["prediction_files"]
    (run / "result.json").write_text(json.dumps(result))
    with pytest.raises(SubmissionError, match=rf"psnr of the saved predictions differs .*\(first: {pair_id}\)"):
        rescore_run(run, ["psnr", "ssim"], manifest=data["manifest"], root=data["root"], progress=False)


def test_rescore_refuses_a_submitted_prediction_that_changed(data, tmp_path):
    """Adding a metric recomputes no old one, so a changed prediction was scored and recorded beside the old
    values; a submission's files are checked against the sha256 in its result.json first."""
    _offset_predictions(tmp_path / "pred", data["files"])
    run = _submit(data, tmp_path / "pred", tmp_path / "runs")
    changed = prediction_path(run / "predictions", sorted(data["targets"])[0])
    write_png(changed, read_image(changed) // 2)
    stored = {name: (run / name).read_bytes() for name in ("result.json", "per_image.parquet")}
    with pytest.raises(SubmissionError, match=f"{changed}: not the prediction the run recorded"):
        rescore_run(run, ["scielab"], manifest=data["manifest"], root=data["root"], progress=False)
    assert {name: (run / name).read_bytes() for name in stored} == stored


def test_predictions_are_not_kept_on_request(data, tmp_path):
    run = run_benchmark("classic", budget="smoke", runs_dir=tmp_path / "runs", manifest=data["manifest"],
                        root=data["root"], metrics=("psnr",), save_predictions=False, progress=False)
    assert not (run / "predictions").exists()
    with pytest.raises(SubmissionError, match="kept no predictions"):
        rescore_run(run, ["ssim"], manifest=data["manifest"], root=data["root"], progress=False)


# ------------------------------------------------------------------------------ deepisp-lowlevel


def test_deepisp_lowlevel_recipe_follows_the_papers_experiment():
    config = resolve_recipe("deepisp-lowlevel", budget="paper", dataset="msr")
    stage = config["stages"][0]
    assert config["optimizer"]["lr"] == 5e-5 and config["inputs"] == ["raw", "rgb"]
    assert stage["objective"] == "restoration_mse" and stage["subsets"] == ["with_noise/panasonic"]
    assert stage["objective_args"] == {"target": "target"} and config["eval"]["truth"] == "target"  # MSR: linear
    synth = resolve_recipe("deepisp-lowlevel", dataset="synth")
    assert synth["stages"][0]["objective_args"] == {"target": "linear_target"}
    assert stage_needs(synth["stages"][0]) == {"linear_target"}
    assert synth["eval"]["truth"] == "linear_target"
    assert "truth" not in resolve_recipe("deepisp")["eval"]  # other recipes (and their run ids) unchanged


def test_restoration_mse_value():
    class Identity(torch.nn.Module):
        def forward(self, batch):
            return batch["rgb"]

    batch = {"rgb": torch.full((1, 3, 2, 2), 0.5), "linear_target": torch.full((1, 3, 2, 2), 0.25)}
    assert float(restoration_mse(Identity(), batch)) == pytest.approx(0.0625)


def test_deepisp_lowlevel_trains_and_evaluates_against_the_linear_target(data, tmp_path):
    run = run_benchmark("deepisp-lowlevel", budget="smoke", runs_dir=tmp_path / "runs", manifest=data["manifest"],
                        root=data["root"], metrics=("psnr", "ssim"), progress=False)
    result = json.loads((run / "result.json").read_text())
    assert result["training"]["steps"] == 1 and (run / "model.pt").exists()
    assert result["config"]["eval"]["truth"] == "linear_target"
    assert all(np.isfinite(m["mean"]) for m in result["metrics"].values())
    test = PairDataset(data["manifest"], data["root"], "test", cache_dir=data["root"] / ".isp-bench-cache",
                       progress=False)
    per_image = pd.read_parquet(run / "per_image.parquet")
    for i, pair_id in enumerate(per_image["pair_id"]):
        linear = test[i]["linear_target"].permute(1, 2, 0).double().numpy()
        prediction = read_srgb(prediction_path(run / "predictions", pair_id))
        assert per_image["psnr"][i] == score_pair(prediction, linear, ["psnr"])["psnr"]
