"""The training loop: staged, deterministic from a seed, checkpointed and resumable.

The batch of step ``s`` in stage ``k`` is a pure function of (seed, k, s) (see
:class:`isp_bench.data.PairDataset`), model initialisation is seeded, and checkpoints hold the
model, the optimiser and the position, so an interrupted run resumed from its last checkpoint ends
with exactly the weights of an uninterrupted one. Checkpoints are written atomically and load with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import DataLoader

from isp_bench.data import PairDataset
from isp_bench.data.cache import has_linear_target
from isp_bench.files import atomic_path
from isp_bench.manifest import Manifest
from isp_bench.train.losses import get_objective, needs_linear_target

CHECKPOINT = "checkpoint.pt"
FINAL = "model.pt"


def lr_at(stage: dict[str, Any], step: int) -> float:
    """Step schedule: the stage's lr, times ``lr_decay`` after each fraction in ``lr_decay_at``."""
    passed = sum(step >= math.floor(f * stage["steps"]) for f in stage["lr_decay_at"])
    return stage["lr"] * stage["lr_decay"] ** passed


def _trainable(model: torch.nn.Module, prefixes: list[str] | None) -> list[torch.nn.Parameter]:
    params = [p for name, p in model.named_parameters()
              if prefixes is None or any(name.startswith(pfx + ".") for pfx in prefixes)]
    if not params:
        raise ValueError(f"no parameters match {prefixes}")
    return params


def save_checkpoint(path: Path, model, optimizer, stage: int, step: int, losses: list[float]) -> None:
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict() if optimizer else None,
             "stage": stage, "step": step, "losses": losses}
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def deepisp_affine_fit(dataset: PairDataset, max_pixels: int = 200_000) -> torch.Tensor:
    """DeepISP's head initialisation: the average over training images of the affine least-squares
    fit ``target ≈ A·[r, g, b, 1]`` of the bilinear input to the target. Returns 3×4."""
    fits = []
    for i in range(len(dataset.rows)):
        sample = dataset[i]
        x = sample["rgb"].reshape(3, -1).T.double()
        y = sample["target"].reshape(3, -1).T.double()
        step = max(1, x.shape[0] // max_pixels)
        x, y = x[::step], y[::step]
        design = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
        fits.append(torch.linalg.lstsq(design, y).solution.T)
    return torch.stack(fits).mean(0).float()


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

    Writes ``run_dir/model.pt`` (state dict) at the end and returns a summary (steps, losses,
    seconds, samples/s).
    """
    from tqdm import tqdm

    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path, final_path = run_dir / CHECKPOINT, run_dir / FINAL
    started = time.perf_counter()
    if final_path.exists():
        model.load_state_dict(torch.load(final_path, map_location="cpu", weights_only=True))
        return {"resumed": "finished", "seconds": 0.0}
    model.to(device)
    start_stage, start_step, losses, resumed = 0, 0, [], None
    state = load_checkpoint(ckpt_path) if ckpt_path.exists() else None
    if state is not None:
        model.load_state_dict(state["model"])
        start_stage, start_step, losses = state["stage"], state["step"], list(state["losses"])
        resumed = {"stage": start_stage, "step": start_step}
    elif config.get("init") == "deepisp_affine_fit" and config["stages"]:
        fit_data = PairDataset(manifest, root, "train", cache_dir=cache_dir, inputs=("raw", "rgb"), progress=False)
        fit = deepisp_affine_fit(fit_data)
        with torch.no_grad():
            bias = model.fc.bias.view(3, 10)
            bias.zero_()
            bias[:, :3], bias[:, 9] = fit[:, :3], fit[:, 3]

    samples_seen = 0
    for k, stage in enumerate(config["stages"]):
        if k < start_stage:
            continue
        objective = get_objective(stage["objective"])
        params = _trainable(model, stage["trainable"])
        for p in model.parameters():
            p.requires_grad_(False)
        for p in params:
            p.requires_grad_(True)
        opt_cfg = config["optimizer"]
        optimizer = torch.optim.Adam(params, lr=stage["lr"], betas=tuple(opt_cfg["betas"]), eps=opt_cfg["eps"])
        first = start_step if k == start_stage else 0
        if state is not None and k == start_stage and state["optimizer"] is not None:
            optimizer.load_state_dict(state["optimizer"])
        inputs = set(config["inputs"])
        dataset = PairDataset(
            manifest, root, "train", cache_dir=cache_dir, patch=tuple(stage["patch"]), augment=True,
            inputs=tuple(inputs), roles=stage["roles"], subsets=stage["subsets"],
            samples_per_epoch=stage["steps"] * stage["batch_size"], seed=config["seed"], progress=False)
        if needs_linear_target(stage) and not all(has_linear_target(r) for r in dataset.rows):
            raise ValueError(f"stage {stage['name']!r} needs linear (restoration) targets: some pairs have none and "
                             "cannot get one from the classic pipeline (short exposures, or no white balance / "
                             "colour matrix in the raw)")
        dataset.set_epoch(k)
        batch_size = stage["batch_size"]
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=loader_workers,
                            sampler=range(first * batch_size, stage["steps"] * batch_size))
        model.train()
        bar = tqdm(total=stage["steps"], initial=first, desc=f"{config['model']} {stage['name']}", unit="step",
                   disable=not progress)
        for step, batch in enumerate(loader, start=first):
            batch = {key: v.to(device) if isinstance(v, torch.Tensor) else v for key, v in batch.items()}
            for group in optimizer.param_groups:
                group["lr"] = lr_at(stage, step)
            optimizer.zero_grad(set_to_none=True)
            loss = objective(model, batch, **stage["objective_args"])
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{config['model']} stage {stage['name']} step {step}: loss is {loss.item()}")
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            samples_seen += batch_size
            bar.update()
            bar.set_postfix(loss=f"{losses[-1]:.4g}")
            done = step + 1
            if done % config["checkpoint_every"] == 0 or done == stage["steps"]:
                at_end = done == stage["steps"]
                save_checkpoint(ckpt_path, model, None if at_end else optimizer, k + 1 if at_end else k,
                                0 if at_end else done, losses)
            if on_step is not None:
                on_step(k, step, losses[-1])
        bar.close()
        state = None
    for p in model.parameters():
        p.requires_grad_(True)
    with atomic_path(final_path, suffix=".pt") as tmp:
        torch.save(model.state_dict(), tmp)
    seconds = time.perf_counter() - started
    return {"resumed_from": resumed, "steps": sum(s["steps"] for s in config["stages"]), "losses": losses,
            "final_loss": losses[-1] if losses else None, "seconds": seconds,
            "samples_per_s": samples_seen / seconds if seconds > 0 and samples_seen else None,
            "loss_mean_last_10": float(np.mean(losses[-10:])) if losses else None}
