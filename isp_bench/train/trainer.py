"""The training loop: staged, deterministic from a seed, checkpointed, resumable, validated.

The batch of step ``s`` in stage ``k`` is a pure function of (seed, k, s) (see
:class:`isp_bench.data.PairDataset`), model initialisation is seeded, and checkpoints hold the
model, the optimiser and the position, so an interrupted run resumed from its last checkpoint ends
with exactly the weights of an uninterrupted one. Checkpoints are written atomically and load with
``torch.load(weights_only=True)``.

Files in the run folder: ``checkpoint.pt`` (weights, optimiser state, position, losses) exists only
while training; at the end the record ``training.json`` is written, then the weights ``model.pt``, then
the checkpoint is deleted, each step atomic, so an interruption at any moment resumes or finds the
run finished. A finished run is never trained or recorded again: :func:`train` returns its stored
record.

The trainer names no model. What a model needs is declared: the recipe's ``inputs`` (batch keys),
each objective's ``needs`` (targets every training pair must have, see
:func:`isp_bench.train.losses.register_objective`), and a data-fitted initialisation as the model's
``init_from_data(frames)`` method with the recipe ``init`` it implements in ``model.data_init``.
"""

from __future__ import annotations

import inspect
import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, default_collate

from isp_bench.data import PairDataset
from isp_bench.data.cache import has_linear_target
from isp_bench.files import atomic_path, atomic_write_text
from isp_bench.manifest import Manifest
from isp_bench.train.losses import get_objective
from isp_bench.train.recipe import OPTIMIZERS, RecipeError

CHECKPOINT = "checkpoint.pt"
FINAL = "model.pt"
RECORD = "training.json"

TARGET_CHECKS: dict[str, tuple[Callable[[dict[str, Any]], bool], str]] = {
    "linear_target": (has_linear_target, "some pairs have none and cannot get one from the classic pipeline "
                                         "(short exposures, or no white balance / colour matrix in the raw)"),
}
"""Objective ``needs`` → (does a manifest row have it, why it may not)."""


def lr_at(stage: dict[str, Any], step: int) -> float:
    """Learning rate of 0-based ``step``: the stage's lr, times ``lr_decay`` after each fraction in
    ``lr_decay_at``, ramped linearly over the first ``warmup_steps`` steps (step s of a warm-up of W
    steps: lr · (s + 1) / W, so the first step already moves and step W - 1 uses the full lr)."""
    passed = sum(step >= math.floor(f * stage["steps"]) for f in stage["lr_decay_at"])
    warmup = stage.get("warmup_steps", 0)
    ramp = min(1.0, (step + 1) / warmup) if warmup else 1.0
    return stage["lr"] * stage["lr_decay"] ** passed * ramp


def optimizer_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, grad_clip_norm: float | None) -> None:
    """Back-propagate ``loss`` and step the optimiser; with ``grad_clip_norm``, the gradients of the
    optimiser's parameters are first rescaled so that their joint L2 norm is at most that value
    (:func:`torch.nn.utils.clip_grad_norm_`; a scaled fp16 loss must be unscaled before the clip)."""
    loss.backward()
    if grad_clip_norm is not None:
        params = [p for group in optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, grad_clip_norm)
    optimizer.step()


def _set_trainable(model: torch.nn.Module, prefixes: list[str] | None) -> list[torch.nn.Parameter]:
    """Freeze every parameter except those under the module ``prefixes`` (all when ``None``); return those."""
    params = [p for name, p in model.named_parameters()
              if prefixes is None or any(name.startswith(pfx + ".") for pfx in prefixes)]
    if not params:
        raise ValueError(f"no parameters match {prefixes}")
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    return params


def build_optimizer(params: list[torch.nn.Parameter], optimizer: dict[str, Any], lr: float) -> torch.optim.Optimizer:
    """The recipe's ``optimizer``: ``name`` picks the torch.optim class (:data:`OPTIMIZERS`), every other
    key except ``lr`` (the stage's ``lr`` applies) is passed to it (YAML lists become tuples)."""
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in optimizer.items() if k not in ("name", "lr")}
    return getattr(torch.optim, OPTIMIZERS[optimizer["name"]])(params, lr=lr, **kwargs)


def save_checkpoint(path: Path, model, optimizer, stage: int, step: int, progress: dict[str, Any]) -> None:
    """``progress``: the record so far (``losses``, ``validation_psnr``, ``seconds``)."""
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict() if optimizer else None,
             "stage": stage, "step": step, **progress}
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def _init_from_data(model, config: dict[str, Any], manifest: Manifest, root: Path, cache_dir: Path | None) -> None:
    """Run the model's data-fitted initialisation the recipe asks for (``init``) on the training frames."""
    offered = getattr(model, "data_init", None)
    if offered != config["init"]:
        raise RecipeError(f"recipe {config.get('recipe', config['model'])!r} asks for init {config['init']!r}; model "
                          f"{config['model']!r} implements {offered or 'no data-fitted initialisation'!r}")
    model.init_from_data(PairDataset(manifest, root, "train", cache_dir=cache_dir, inputs=tuple(config["inputs"]),
                                     progress=False))


def _check_objective_args(config: dict[str, Any]) -> None:
    """Every stage's ``objective_args`` are keyword arguments its objective takes (checked before the
    first step, so that a typo does not surface after hours of an earlier stage)."""
    for stage in config["stages"]:
        try:
            inspect.signature(get_objective(stage["objective"])).bind(None, None, **stage["objective_args"])
        except TypeError as error:
            raise RecipeError(f"recipe {config.get('recipe', config['model'])!r}, stage {stage['name']!r}: "
                              f"objective_args {sorted(stage['objective_args'])} do not fit objective "
                              f"{stage['objective']}: {error}") from None


def stage_needs(stage: dict[str, Any]) -> set[str]:
    """The batch targets beyond ``target`` a resolved stage trains against: its objective's ``needs``
    and any target its ``objective_args`` name (e.g. ``restoration_mse(target="linear_target")``)."""
    named = {v for v in stage["objective_args"].values() if isinstance(v, str) and v in TARGET_CHECKS}
    return set(getattr(get_objective(stage["objective"]), "needs", ())) | named


def _check_needs(stage: dict[str, Any], dataset: PairDataset) -> None:
    for need in sorted(stage_needs(stage)):
        has, why = TARGET_CHECKS[need]
        if not all(has(row) for row in dataset.rows):
            raise ValueError(f"stage {stage['name']!r} (objective {stage['objective']}) needs {need}: {why}")


class Validation:
    """Validation PSNR on a fixed small set: ``frames`` pairs evenly spread over the manifest's ``val``
    split (its ``train`` split when it has none), one ``crop`` each at a position fixed by the pair
    (independent of the run's seed), model in eval mode. PSNR (dB, output clipped to [0, 1], against the
    recipe's ``eval.truth``: ``target`` unless the model restores a linear image) is
    :func:`isp_bench.metrics.psnr` per crop, averaged over crops."""

    def __init__(self, config: dict[str, Any], manifest: Manifest, root: Path, cache_dir: Path | None):
        spec = config["validation"]
        self.split = "val" if any(row["split"] == "val" for row in manifest.rows()) else "train"
        data = PairDataset(manifest, root, self.split, cache_dir=cache_dir, patch=tuple(spec["crop"]),
                           inputs=tuple(config["inputs"]), seed=0, progress=False)
        count = min(spec["frames"], len(data.rows))
        self.samples = [data[int(i)] for i in np.unique(np.linspace(0, len(data.rows) - 1, count).round())]
        self.every = spec["every"]
        self.truth = config["eval"].get("truth", "target")  # what the model's output is scored against
        self.description = {"split": self.split, "crop": list(spec["crop"]), "every": self.every,
                            "pairs": [s["pair_id"] for s in self.samples]}

    def due(self, done: int, steps: int) -> bool:
        return done % self.every == 0 or done == steps

    @torch.no_grad()
    def psnr(self, model: torch.nn.Module, device: str) -> float:
        from isp_bench.metrics import psnr

        was_training = model.training
        model.eval()
        values = []
        for sample in self.samples:
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v
                     for k, v in default_collate([sample]).items()}
            out = model(batch).clamp(0, 1)[0].permute(1, 2, 0).float().cpu()
            values.append(psnr(out, sample[self.truth].permute(1, 2, 0)))
        model.train(was_training)
        return float(np.mean(values))


def _stage_loader(config: dict[str, Any], k: int, first: int, manifest: Manifest, root: Path,
                  cache_dir: Path | None, workers: int) -> DataLoader:
    """The batches of stage ``k`` from its step ``first`` on (each a pure function of seed, stage, step)."""
    stage = config["stages"][k]
    dataset = PairDataset(
        manifest, root, "train", cache_dir=cache_dir, patch=tuple(stage["patch"]), augment=True,
        inputs=tuple(set(config["inputs"])), roles=stage["roles"], subsets=stage["subsets"],
        samples_per_epoch=stage["steps"] * stage["batch_size"], seed=config["seed"], progress=False)
    _check_needs(stage, dataset)
    dataset.set_epoch(k)
    batch_size = stage["batch_size"]
    return DataLoader(dataset, batch_size=batch_size, num_workers=workers,
                      sampler=range(first * batch_size, stage["steps"] * batch_size))


def _finish(run_dir: Path, model: torch.nn.Module, record: dict[str, Any]) -> None:
    """Record, then weights, then drop the checkpoint: each step atomic, so any interruption resumes."""
    atomic_write_text(run_dir / RECORD, json.dumps(record, indent=1) + "\n")
    with atomic_path(run_dir / FINAL, suffix=".pt") as tmp:
        torch.save(model.state_dict(), tmp)
    (run_dir / CHECKPOINT).unlink(missing_ok=True)  # optimiser state only while training: one weights file


def _read_record(run_dir: Path) -> dict[str, Any]:
    path = run_dir / RECORD
    if path.exists():
        return json.loads(path.read_text())
    return {"note": f"{path.name} missing: the weights were kept but the record of their training was not"}


def train(
    model: torch.nn.Module,
    config: dict[str, Any],
    manifest: Manifest,
    root: Path,
    run_dir: Path,
    *,
    device: str = "cpu",
    cache_dir: Path | None = None,
    loader_workers: int = 0,
    on_step: Callable[[int, int, float], None] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train ``model`` through the config's stages, resuming from ``run_dir/checkpoint.pt``.

    Returns the training record, also written to ``run_dir/training.json``: steps, losses (one per
    step), validation PSNR points, ``seconds`` (training time over every session), samples/s (this
    session). A finished run (``model.pt`` present) loads its weights and returns the stored record.
    """
    from tqdm import tqdm

    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path, final_path = run_dir / CHECKPOINT, run_dir / FINAL
    if final_path.exists():
        model.load_state_dict(torch.load(final_path, map_location="cpu", weights_only=True))
        ckpt_path.unlink(missing_ok=True)  # left by an interruption between writing model.pt and deleting it
        return _read_record(run_dir)
    _check_objective_args(config)
    started = time.perf_counter()
    model.to(device)
    start_stage, start_step, resumed = 0, 0, None
    record: dict[str, Any] = {"losses": [], "validation_psnr": [], "seconds": 0.0}
    state = load_checkpoint(ckpt_path) if ckpt_path.exists() else None
    if state is not None:
        model.load_state_dict(state["model"])
        start_stage, start_step = state["stage"], state["step"]
        record = {"losses": list(state["losses"]), "validation_psnr": list(state.get("validation_psnr", [])),
                  "seconds": float(state.get("seconds", 0.0))}
        resumed = {"stage": start_stage, "step": start_step}
    elif config.get("init") and config["stages"]:
        _init_from_data(model, config, manifest, root, cache_dir)
    validation = Validation(config, manifest, root, cache_dir) if config["stages"] else None

    def progress_so_far() -> dict[str, Any]:
        return {**record, "seconds": record["seconds"] + time.perf_counter() - started}

    losses, samples_seen = record["losses"], 0
    for k, stage in enumerate(config["stages"]):
        if k < start_stage:
            continue
        objective = get_objective(stage["objective"])
        optimizer = build_optimizer(_set_trainable(model, stage["trainable"]), config["optimizer"], stage["lr"])
        first = start_step if k == start_stage else 0
        if state is not None and k == start_stage and state["optimizer"] is not None:
            optimizer.load_state_dict(state["optimizer"])
        loader = _stage_loader(config, k, first, manifest, root, cache_dir, loader_workers)
        model.train()
        bar = tqdm(total=stage["steps"], initial=first, desc=f"{config['model']} {stage['name']}", unit="step",
                   disable=not progress)
        postfix: dict[str, str] = {}
        for step, batch in enumerate(loader, start=first):
            batch = {key: v.to(device) if isinstance(v, torch.Tensor) else v for key, v in batch.items()}
            for group in optimizer.param_groups:
                group["lr"] = lr_at(stage, step)
            optimizer.zero_grad(set_to_none=True)
            loss = objective(model, batch, **stage["objective_args"])
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{config['model']} stage {stage['name']} step {step}: loss is {loss.item()}")
            optimizer_step(optimizer, loss, stage.get("grad_clip_norm"))
            losses.append(loss.item())
            samples_seen += stage["batch_size"]
            done = step + 1
            postfix["loss"] = f"{losses[-1]:.4g}"
            if validation.due(done, stage["steps"]):
                value = validation.psnr(model, device)
                record["validation_psnr"].append({"stage": stage["name"], "step": done, "psnr": value})
                postfix["val_psnr"] = f"{value:.2f}"
            bar.update()
            bar.set_postfix(postfix)
            if done % config["checkpoint_every"] == 0 or done == stage["steps"]:
                at_end = done == stage["steps"]
                save_checkpoint(ckpt_path, model, None if at_end else optimizer, k + 1 if at_end else k,
                                0 if at_end else done, progress_so_far())
            if on_step is not None:
                on_step(k, step, losses[-1])
        bar.close()
        state = None
    for p in model.parameters():
        p.requires_grad_(True)
    session = time.perf_counter() - started
    points = record["validation_psnr"]
    summary = {
        "resumed_from": resumed, "steps": sum(s["steps"] for s in config["stages"]), "losses": losses,
        "final_loss": losses[-1] if losses else None, "seconds": record["seconds"] + session,
        "samples_per_s": samples_seen / session if session > 0 and samples_seen else None,
        "loss_mean_last_10": float(np.mean(losses[-10:])) if losses else None,
        "validation_set": validation.description if validation else None, "validation_psnr": points,
        "final_validation_psnr": points[-1]["psnr"] if points else None,
    }
    _finish(run_dir, model, summary)
    return summary
