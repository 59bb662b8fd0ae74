"""Training schedules: linear warm-up and gradient-norm clipping (recipe keys ``warmup_steps`` and
``grad_clip_norm``), per-budget stage settings, and the ``standard`` budget."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch

from isp_bench.ingest import ingest
from isp_bench.models import create_model
from isp_bench.runs import run_benchmark
from isp_bench.train.recipe import BUDGETS, RecipeError, list_recipes, load_recipe, resolve_recipe
from isp_bench.train.trainer import _record_so_far, apply_gradients, lr_at, optimizer_step

RECIPE = """model: unet
paper: plain SGD, so that one step moves the weights by exactly lr x the (clipped) gradient
inputs: [raw]
optimizer: {name: sgd, lr: 1.0}
stages:
  - name: train
    objective: srgb_l1
budgets:
  smoke: {steps: 1, batch_size: 1, patch: [32, 32], stages: {train: {warmup_steps: 4, grad_clip_norm: 0.01}}}
  short: {steps: 10, batch_size: 1, patch: [64, 64]}
  standard: {steps: 10, batch_size: 1, patch: [64, 64]}
  paper: {steps: 100, batch_size: 1, patch: [64, 64]}
"""


@pytest.fixture(scope="module")
def tiny_synth(synth_root, tmp_path_factory):
    """A copy of the session's small synthetic set (conftest's ``synth_root``) and its manifest: (root, manifest
    path). A copy, because a run writes its cache into the dataset root and ``synth_root`` is read-only."""
    base = tmp_path_factory.mktemp("tiny-synth")
    root = shutil.copytree(synth_root, base / "synth")
    return root, ingest("synth", root, base / "synth.parquet", workers=1, progress=False).manifest.path


def test_warmup_ramps_linearly_then_the_step_decay_applies():
    stage = {"lr": 1e-3, "lr_decay": 0.1, "lr_decay_at": [0.75], "steps": 100, "warmup_steps": 4}
    assert [lr_at(stage, s) for s in range(5)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3])
    assert (lr_at(stage, 74), lr_at(stage, 75)) == pytest.approx((1e-3, 1e-4))
    assert lr_at({**stage, "warmup_steps": 0}, 0) == 1e-3


def test_optimizer_step_bounds_the_gradient_norm():
    weight = torch.nn.Parameter(torch.zeros(3))
    target = torch.tensor([3.0, 4.0, 0.0])  # gradient of -<w, target> is -target: norm 5
    for clip, moved in ((None, 5.0), (10.0, 5.0), (0.5, 0.5)):
        with torch.no_grad():
            weight.zero_()
        optimizer = torch.optim.SGD([weight], lr=1.0)
        optimizer.zero_grad()
        norm = optimizer_step(-(weight * target).sum(), optimizer, grad_clip_norm=clip)
        assert norm == pytest.approx(5.0)  # the norm before clipping, whatever the bound
        assert float(weight.detach().norm()) == pytest.approx(moved)
        assert torch.allclose(weight / weight.norm(), target / 5)  # clipping rescales, never turns


def test_a_gradient_that_is_not_finite_leaves_the_other_parameters_alone_without_a_bound():
    finite, broken = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    finite.grad, broken.grad = torch.tensor([1.0, 2.0]), torch.tensor([float("inf"), 0.0])
    norm = apply_gradients(torch.optim.SGD([finite, broken], lr=1.0), torch.amp.GradScaler(enabled=False))
    assert torch.isinf(norm) and torch.equal(finite.detach(), torch.tensor([-1.0, -2.0]))  # measured, not rescaled


def test_a_checkpoint_from_before_gradient_norms_resumes_step_for_step():
    record = _record_so_far({"losses": [0.3, 0.2], "validation_psnr": [], "seconds": 1.0})
    assert record["grad_norms"] == [None, None]  # the next step's norm lands at its own index


def test_the_trainer_honours_warmup_and_clipping(tmp_path, tiny_synth):
    root, manifest = tiny_synth
    recipe = tmp_path / "unet-sgd.yaml"
    recipe.write_text(RECIPE)
    run_dir = run_benchmark(recipe=str(recipe), budget="smoke", runs_dir=tmp_path / "runs", manifest=manifest,
                            root=root, evaluate=False, progress=False)
    torch.manual_seed(0)  # run_benchmark's model initialisation (seed 0)
    before = dict(create_model("unet").named_parameters())
    after = torch.load(run_dir / "model.pt", weights_only=True)
    moved = torch.sqrt(sum(((after[k] - p.detach()) ** 2).sum() for k, p in before.items()))
    assert float(moved) == pytest.approx(1.0 / 4 * 0.01, rel=1e-3)  # lr of step 0 of a 4-step warm-up x bound
    record = json.loads((run_dir / "training.json").read_text())  # each step's gradient norm, before clipping
    assert len(record["grad_norms"]) == record["steps"] and min(record["grad_norms"]) > 0.01


def test_each_progress_line_shows_the_loss_of_its_last_step(tmp_path, tiny_synth, capsys, monkeypatch):
    monkeypatch.setenv("TQDM_MININTERVAL", "0")  # tqdm draws every update, so a line with a stale loss would show
    root, manifest = tiny_synth
    recipe = tmp_path / "unet-sgd.yaml"
    recipe.write_text(RECIPE.replace("lr: 1.0", "lr: 0.01").replace("steps: 10, batch_size: 1, patch: [64, 64]",
                                     "steps: 10, batch_size: 1, patch: [32, 32]"))  # fits synth_root's 64 x 96
    capsys.readouterr()
    run_dir = run_benchmark(recipe=str(recipe), budget="short", runs_dir=tmp_path / "runs", manifest=manifest,
                            root=root, evaluate=False, progress=True)
    losses = json.loads((run_dir / "training.json").read_text())["losses"]
    shown = re.findall(r"unet train:.*?(\d+)/10 .*?loss=([-+.\de]+)", capsys.readouterr().err.replace("\r", "\n"))
    assert [int(n) for n, _ in shown] == sorted(int(n) for n, _ in shown) and int(shown[-1][0]) == 10
    assert all(loss == f"{losses[int(n) - 1]:.4g}" for n, loss in shown)  # after n steps, step n's loss


def test_budget_stage_settings_resolve_and_are_checked(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(RECIPE)
    smoke, short = (resolve_recipe(str(path), budget=b)["stages"][0] for b in ("smoke", "short"))
    assert (smoke["warmup_steps"], smoke["grad_clip_norm"]) == (4, 0.01)
    assert (short["warmup_steps"], short["grad_clip_norm"]) == (0, None)
    for edit, match in ((("train: {warmup", "tune: {warmup"), "'tune'"), (("warmup_steps: 4", "warmup: 4"), "'warmup'")):
        path.write_text(RECIPE.replace(*edit))
        with pytest.raises(RecipeError, match=match):
            resolve_recipe(str(path), budget="smoke")


def test_every_recipe_sizes_every_budget_including_standard():
    assert list(BUDGETS) == ["smoke", "short", "standard", "paper"]
    for name in list_recipes():
        assert set(load_recipe(name)["budgets"]) == set(BUDGETS)
        for stage in resolve_recipe(name, budget="standard")["stages"]:
            assert stage["steps"] >= resolve_recipe(name, budget="short")["stages"][0]["steps"]
