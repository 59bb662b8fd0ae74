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
record. While training, ``progress.json`` says how far it is at its last validation point (stage, steps
done of all, training seconds, the validation PSNR): a quiet or remote run is followed by reading it. It is
removed when training starts and when it ends (evaluation follows).

Speed and scale (see :mod:`isp_bench.devices`, :mod:`isp_bench.distributed`): the forward pass and the
loss run under autocast in the config's ``precision`` (fp16 with a gradient scaler); on CUDA the model
and its inputs are channels-last, TF32 and cuDNN autotuning are on, and batches come from pinned
memory with non-blocking copies; ``compile=True`` runs the step through :func:`torch.compile`. Under
torchrun each rank draws its share of every global batch and DistributedDataParallel averages the
gradients; rank 0 alone writes checkpoints and the record. Positions are global steps, so any world
size resumes any checkpoint.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import default_collate

from isp_bench import distributed
from isp_bench.data import BatchLoader, PairDataset
from isp_bench.data.dataset import unalignable
from isp_bench.data.cache import has_linear_target
from isp_bench.devices import autocast, configure_for_speed, grad_scaler, memory_format, to_device
from isp_bench.devices import loader_workers as resolve_loader_workers
from isp_bench.files import atomic_path, atomic_write_text
from isp_bench.manifest import Manifest
from isp_bench.train.losses import get_objective
from isp_bench.train.recipe import OPTIMIZERS, RecipeError

CHECKPOINT = "checkpoint.pt"
FINAL = "model.pt"
RECORD = "training.json"
PROGRESS = "progress.json"

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
    key except ``lr`` (the stage's ``lr`` applies) is passed to it (YAML lists become tuples). The class's
    fused implementation (one kernel updates every parameter; the same update up to rounding) is used on every
    device that has it, the CPU included, unless the recipe says ``fused`` or ``foreach``: on 2 CPU cores torch's
    default per-tensor loop took 0.07–0.28 s for an Adam update of 30 M parameters, the fused kernel 0.02–0.03 s,
    beside a training step of ~0.6 s (``benchmarks/optimizer_step.py``)."""
    cls = getattr(torch.optim, OPTIMIZERS[optimizer["name"]])
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in optimizer.items() if k not in ("name", "lr")}
    if (params and "fused" in inspect.signature(cls).parameters
            and not any(kwargs.get(k) is not None for k in ("fused", "foreach")) and not kwargs.get("differentiable")):
        try:
            return cls(params, lr=lr, fused=True, **kwargs)
        except RuntimeError:  # a device (or parameter type) without the fused kernel: torch's default there
            pass
    return cls(params, lr=lr, **kwargs)


def optimizer_implementation(optimizer: torch.optim.Optimizer) -> str:
    """How ``optimizer`` updates its parameters: ``fused`` (one kernel for all of them), ``foreach`` (one kernel per
    operation over all of them) or ``for-loop`` (kernels per parameter): the same update up to rounding, which
    training amplifies, so a run's record names it (a reproduction with another one does not give the same bits)."""
    if optimizer.defaults.get("fused"):
        return "fused"
    foreach = optimizer.defaults.get("foreach")
    if foreach is None:  # torch's default: foreach where every parameter is on a CUDA device
        foreach = all(p.is_cuda for group in optimizer.param_groups for p in group["params"])
    return "foreach" if foreach else "for-loop"


def load_optimizer_state(optimizer: torch.optim.Optimizer, saved: dict[str, Any]) -> None:
    """A checkpoint's optimiser state into ``optimizer``, keeping ``optimizer``'s own ``fused``/``foreach``
    (:func:`build_optimizer` chose them for this device, whatever the checkpoint's device was)."""
    for saved_group, group in zip(saved["param_groups"], optimizer.param_groups):
        for key in ("fused", "foreach"):
            if key in group:
                saved_group[key] = group[key]
    optimizer.load_state_dict(saved)


class StepLoss(torch.nn.Module):
    """The model and a stage's objective as one module whose forward is the loss: what DistributedDataParallel
    and :func:`torch.compile` wrap, so that objectives may call any of the model's methods (not only its
    forward) and still have their gradients averaged over the ranks."""

    def __init__(self, model: torch.nn.Module, objective: Callable[..., torch.Tensor], args: dict[str, Any]):
        super().__init__()
        self.model, self.objective, self.args = model, objective, args

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.objective(self.model, batch, **self.args)


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None = None,
                   grad_clip_norm: float | None = None) -> torch.Tensor:
    """Backward pass and parameter update; returns the gradient norm before clipping (:func:`apply_gradients`).
    With fp16 the loss is scaled before the backward pass and the gradients unscaled before the update (a
    step with non-finite gradients is skipped and the scale lowered); otherwise ``scaler`` passes through.
    With ``grad_clip_norm`` the (unscaled) gradients of the optimiser's parameters are rescaled so that their
    joint L2 norm is at most that value (:func:`torch.nn.utils.clip_grad_norm_`)."""
    scaler = scaler if scaler is not None else torch.amp.GradScaler(enabled=False)
    scaler.scale(loss).backward()
    return apply_gradients(optimizer, scaler, grad_clip_norm)


def apply_gradients(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                    grad_clip_norm: float | None = None) -> torch.Tensor:
    """The update of :func:`optimizer_step` once the backward pass has run. Returns the gradients' joint L2
    norm before clipping (unscaled; a 0-d tensor on their device, so that nothing waits for it unless read):
    a training spike's first sign."""
    scaler.unscale_(optimizer)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if grad_clip_norm is not None:
        norm = torch.nn.utils.clip_grad_norm_(params, grad_clip_norm)
    else:  # measured, the gradients untouched (a bound of inf would turn them all to NaN when one is not finite)
        grads = [p.grad for p in params if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])) if grads \
            else torch.zeros(())
    scaler.step(optimizer)
    scaler.update()
    return norm


def save_checkpoint(path: Path, model, optimizer, stage: int, step: int, progress: dict[str, Any],
                    scaler: torch.amp.GradScaler | None = None) -> None:
    """``progress``: the record so far (``losses``, ``grad_norms``, ``validation_psnr``, ``seconds``);
    ``scaler``: fp16's gradient scaler, whose scale is part of the position."""
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict() if optimizer else None,
             "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
             "stage": stage, "step": step, **progress}
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def _init_from_data(model, config: dict[str, Any], manifest: Manifest, root: Path, cache_dir: Path | None,
                    scheduler: str) -> None:
    """Run the model's data-fitted initialisation the recipe asks for (``init``) on the training frames."""
    offered = getattr(model, "data_init", None)
    if offered != config["init"]:
        raise RecipeError(f"recipe {config.get('recipe', config['model'])!r} asks for init {config['init']!r}; model "
                          f"{config['model']!r} implements {offered or 'no data-fitted initialisation'!r}")
    model.init_from_data(PairDataset(manifest, root, "train", cache_dir=cache_dir, inputs=tuple(config["inputs"]),
                                     build_scheduler=scheduler, progress=False))


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


def _check_illuminant_gains(config: dict[str, Any], model: torch.nn.Module) -> None:
    """Illuminant gains recolour the raw and divide the white balance by the same gains: only a model that
    reads ``wb`` can know the light (any other would be taught to guess it)."""
    for stage in config["stages"]:
        if stage.get("illuminant_gains") and "wb" not in getattr(getattr(model, "card", None), "metadata", ()):
            raise RecipeError(f"recipe {config.get('recipe', config['model'])!r}, stage {stage['name']!r}: "
                              f"illuminant_gains needs a model that reads the white balance (`wb`); "
                              f"{config['model']} does not: remove illuminant_gains from the recipe")


def stage_needs(stage: dict[str, Any]) -> set[str]:
    """The batch targets beyond ``target`` a resolved stage trains against: its objective's ``needs``
    and any target its arguments name, given in ``objective_args`` or by default (e.g.
    ``restoration_mse(target="linear_target")``)."""
    objective = get_objective(stage["objective"])
    defaults = {name: p.default for name, p in inspect.signature(objective).parameters.items()
                if p.default is not inspect.Parameter.empty}
    named = {v for v in {**defaults, **stage["objective_args"]}.values() if isinstance(v, str) and v in TARGET_CHECKS}
    return set(getattr(objective, "needs", ())) | named


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
    :func:`isp_bench.metrics.psnr` per crop, averaged over crops. A stage whose objective trains a part
    of the model is validated on that part's output (the objective's ``validated_output``, see
    :func:`isp_bench.train.losses.register_objective`): ``description["scored"]`` says what each stage's
    points score."""

    def __init__(self, config: dict[str, Any], manifest: Manifest, root: Path, cache_dir: Path | None,
                 scheduler: str = "local"):
        spec = config["validation"]
        # the val split when it has a pair whose target can be laid on its raw, else the training split
        self.split = "val" if any(r["split"] == "val" and not unalignable(r) for r in manifest.rows()) else "train"
        data = PairDataset(manifest, root, self.split, cache_dir=cache_dir, patch=tuple(spec["crop"]),
                           inputs=tuple(config["inputs"]), seed=0, build_scheduler=scheduler, progress=False)
        count = min(spec["frames"], len(data.rows))
        self.samples = [data[int(i)] for i in np.unique(np.linspace(0, len(data.rows) - 1, count).round())]
        self.every = spec["every"]
        self.truth = config["eval"].get("truth", "target")  # what the model's output is scored against
        # per stage, the part of the model its objective trains (None: the whole model)
        self.parts = {stage["name"]: get_objective(stage["objective"]).validated_output for stage in config["stages"]}
        whole = f"the model's output against {self.truth}"
        self.description = {"split": self.split, "crop": list(spec["crop"]), "every": self.every,
                            "pairs": [s["pair_id"] for s in self.samples],
                            "scored": {name: whole if part is None else part.__doc__.strip().splitlines()[0]
                                       for name, part in self.parts.items()}}

    def due(self, done: int, steps: int) -> bool:
        return done % self.every == 0 or done == steps

    @torch.no_grad()
    def psnr(self, model: torch.nn.Module, device: str, precision: str = "fp32",
             stage: dict[str, Any] | None = None) -> float:
        """Mean PSNR over the crops of the output ``stage`` is validated on (the whole model's without one)."""
        from isp_bench.metrics import psnr

        part = self.parts[stage["name"]] if stage is not None else None
        was_training = model.training
        model.eval()
        values = []
        for sample in self.samples:
            batch = to_device(default_collate([sample]), device, memory_format(device))
            with autocast(device, precision):
                out, truth = part(model, batch) if part is not None else (model(batch), self.truth)
            out = out.float().clamp(0, 1)[0].permute(1, 2, 0).cpu()
            values.append(psnr(out, sample[truth].permute(1, 2, 0)))
        model.train(was_training)
        return float(np.mean(values))


def _stage_loader(config: dict[str, Any], k: int, first: int, manifest: Manifest, root: Path,
                  cache_dir: Path | None, workers: int, threads: bool = False, pin_memory: bool = False,
                  scheduler: str = "local") -> BatchLoader:
    """This rank's batches of stage ``k`` from its step ``first`` on: its share
    (:func:`isp_bench.distributed.rank_items`) of each global batch, a pure function of seed, stage, step."""
    stage = config["stages"][k]
    dataset = PairDataset(
        manifest, root, "train", cache_dir=cache_dir, patch=tuple(stage["patch"]), augment=True,
        illuminant_gains=stage.get("illuminant_gains"),
        inputs=tuple(set(config["inputs"])), targets=("target", *sorted(stage_needs(stage))),
        roles=stage["roles"], subsets=stage["subsets"],
        samples_per_epoch=stage["steps"] * stage["batch_size"], seed=config["seed"], build_scheduler=scheduler,
        progress=False)
    _check_needs(stage, dataset)
    dataset.set_epoch(k)
    where = f"recipe {config.get('recipe', config['model'])!r}, stage {stage['name']!r}"
    return BatchLoader(dataset, distributed.rank_items(first, stage["steps"], stage["batch_size"]),
                       distributed.split_batch(stage["batch_size"], where), workers=workers, threads=threads,
                       pin_memory=pin_memory)


def _load_finished(model: torch.nn.Module, run_dir: Path, main: bool) -> dict[str, Any]:
    """A finished run (``model.pt`` present): its weights into ``model``, and its stored record."""
    model.load_state_dict(torch.load(run_dir / FINAL, map_location="cpu", weights_only=True))
    if main:
        # left by an interruption between writing model.pt and deleting the checkpoint
        (run_dir / CHECKPOINT).unlink(missing_ok=True)
    path = run_dir / RECORD
    if path.exists():
        return json.loads(path.read_text())
    return {"note": f"{path.name} missing: the weights were kept but the record of their training was not"}


def _restore(model: torch.nn.Module, config: dict[str, Any], manifest: Manifest, root: Path, cache_dir: Path | None,
             scheduler: str, checkpoint_path: Path) -> dict[str, Any] | None:
    """Where an unfinished run starts: with a checkpoint, its weights into ``model`` and the checkpoint
    returned; without, the recipe's data-fitted initialisation (when it asks for one and has stages) and
    ``None``."""
    if checkpoint_path.exists():
        checkpoint = load_checkpoint(checkpoint_path)
        model.load_state_dict(checkpoint["model"])
        return checkpoint
    if config.get("init") and config["stages"]:
        _init_from_data(model, config, manifest, root, cache_dir, scheduler)
    return None


def _record_so_far(checkpoint: dict[str, Any] | None) -> dict[str, Any]:
    """The record a session continues: ``losses`` and ``grad_norms`` (one per step), ``validation_psnr`` points
    and ``seconds`` of earlier sessions, from the checkpoint (empty without one)."""
    if checkpoint is None:
        return {"losses": [], "grad_norms": [], "validation_psnr": [], "seconds": 0.0}
    losses = list(checkpoint["losses"])  # a checkpoint from before gradient norms were kept: unknown, step for step
    return {"losses": losses, "grad_norms": list(checkpoint.get("grad_norms", [None] * len(losses))),
            "validation_psnr": list(checkpoint.get("validation_psnr", [])),
            "seconds": float(checkpoint.get("seconds", 0.0))}


@dataclass
class _Session:
    """One call of :func:`train` on an unfinished run: what its stages and steps share.

    ``record`` (see :func:`_record_so_far`) is extended in place, step by step; ``started``
    (:func:`time.perf_counter`), ``samples_seen`` and ``per_rank_batch`` belong to this session only.
    Only the main rank (``main``) validates and writes checkpoints."""

    model: torch.nn.Module
    config: dict[str, Any]
    device: str
    checkpoint_path: Path
    stage_batches: Callable[[int, int], BatchLoader]  # (stage index, first step) -> this rank's batches
    validation: Validation | None
    record: dict[str, Any]
    started: float
    main: bool
    compile_step: bool
    loader_workers: int
    loader_threads: bool
    on_step: Callable[[int, int, float], None] | None
    show_progress: bool
    samples_seen: int = 0
    per_rank_batch: list[int] = field(default_factory=list)
    optimizer_implementations: list[str] = field(default_factory=list)

    @property
    def precision(self) -> str:
        return self.config.get("precision", "fp32")

    def train_stage(self, k: int, first: int, checkpoint: dict[str, Any] | None) -> None:
        """Stage ``k`` from its step ``first`` to its end, with a fresh optimiser and gradient scaler, or
        those saved in ``checkpoint`` (the one this session resumes inside stage ``k``)."""
        from tqdm import tqdm

        stage = self.config["stages"][k]
        optimizer = build_optimizer(_set_trainable(self.model, stage["trainable"]), self.config["optimizer"],
                                    stage["lr"])
        self.optimizer_implementations.append(optimizer_implementation(optimizer))
        scaler = grad_scaler(self.device, self.precision)
        if checkpoint is not None and checkpoint["optimizer"] is not None:
            load_optimizer_state(optimizer, checkpoint["optimizer"])
            if checkpoint.get("scaler") is not None:
                scaler.load_state_dict(checkpoint["scaler"])
        loader = self.stage_batches(k, first)
        self.per_rank_batch.append(loader.batch_size)
        step_loss = distributed.wrap(StepLoss(self.model, get_objective(stage["objective"]), stage["objective_args"]),
                                     self.device)
        if self.compile_step:
            step_loss = torch.compile(step_loss)
        self.model.train()
        bar = tqdm(total=stage["steps"], initial=first, desc=f"{self.config['model']} {stage['name']}", unit="step",
                   disable=not self.show_progress)
        postfix: dict[str, str] = {}
        for step, batch in enumerate(loader, start=first):
            loss, grad_norm = self.train_step(step_loss, optimizer, scaler, stage, step, batch)
            self.record["losses"].append(loss)
            self.record["grad_norms"].append(grad_norm)
            self.samples_seen += stage["batch_size"]
            done = step + 1
            postfix["loss"] = f"{loss:.4g}"
            psnr = self.validate_if_due(k, done)
            if psnr is not None:
                postfix["val_psnr"] = f"{psnr:.2f}"
            bar.set_postfix(postfix, refresh=False)  # shown by update(): each line pairs a step with its own loss
            bar.update()
            self.checkpoint_if_due(k, done, optimizer, scaler)
            if self.on_step is not None:
                self.on_step(k, step, loss)
        bar.close()
        self.loader_threads = self.loader_threads or loader.threads  # worker processes may have become threads

    def train_step(self, step_loss: torch.nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                   stage: dict[str, Any], step: int, batch: dict[str, Any]) -> tuple[float, float | None]:
        """One update at 0-based ``step`` of ``stage``: learning rate :func:`lr_at`, forward pass and loss
        under autocast, the backward pass, then :func:`apply_gradients` with the stage's ``grad_clip_norm``.
        Returns the loss averaged over the ranks (every rank gets the same value, so all stop together on
        a non-finite one, before the update) and the gradients' norm before clipping (:func:`apply_gradients`)."""
        batch = to_device(batch, self.device, memory_format(self.device))
        for group in optimizer.param_groups:
            group["lr"] = lr_at(stage, step)
        optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.precision):
            loss = step_loss(batch)
        scaler.scale(loss).backward()  # queued before the loss is read, so that a GPU is not idle meanwhile
        global_loss = distributed.mean(loss.item())
        if not math.isfinite(global_loss):
            raise FloatingPointError(f"{self.config['model']} stage {stage['name']} step {step}: loss is {global_loss}")
        norm = float(apply_gradients(optimizer, scaler, stage.get("grad_clip_norm")))
        return global_loss, norm if math.isfinite(norm) else None

    def validate_if_due(self, k: int, done: int) -> float | None:
        """After ``done`` steps of stage ``k``: the validation PSNR (dB), recorded and written to
        ``progress.json``, when a point is due, else ``None``."""
        stage = self.config["stages"][k]
        if self.validation is None or not self.validation.due(done, stage["steps"]):
            return None
        value = self.validation.psnr(self.model, self.device, self.precision, stage)
        self.record["validation_psnr"].append({"stage": stage["name"], "step": done, "psnr": value})
        steps = [s["steps"] for s in self.config["stages"]]
        atomic_write_text(self.checkpoint_path.with_name(PROGRESS), json.dumps({
            "stage": stage["name"], "stage_index": k, "step": done, "stage_steps": stage["steps"],
            "steps_done": sum(steps[:k]) + done, "steps_total": sum(steps),
            "seconds": self.seconds_so_far(), "validation_psnr": value}) + "\n")
        return value

    def checkpoint_if_due(self, k: int, done: int, optimizer: torch.optim.Optimizer,
                          scaler: torch.amp.GradScaler) -> None:
        """Rank 0 writes the checkpoint every ``checkpoint_every`` steps and at the stage's end; at the end
        it points at the next stage's first step and holds no optimiser or scaler state (each stage starts
        fresh ones)."""
        steps = self.config["stages"][k]["steps"]
        if not (self.main and (done % self.config["checkpoint_every"] == 0 or done == steps)):
            return
        if done == steps:
            save_checkpoint(self.checkpoint_path, self.model, None, k + 1, 0, self.progress_so_far(), None)
        else:
            save_checkpoint(self.checkpoint_path, self.model, optimizer, k, done, self.progress_so_far(), scaler)

    def seconds_so_far(self) -> float:
        """Training seconds of every session, this one up to now."""
        return self.record["seconds"] + time.perf_counter() - self.started

    def progress_so_far(self) -> dict[str, Any]:
        """The record with ``seconds`` brought up to now."""
        return {**self.record, "seconds": self.seconds_so_far()}

    def summary(self, resumed_from: dict[str, int] | None) -> dict[str, Any]:
        """The training record (see :func:`train`)."""
        session = time.perf_counter() - self.started
        losses, points = self.record["losses"], self.record["validation_psnr"]
        return {
            "resumed_from": resumed_from, "steps": sum(s["steps"] for s in self.config["stages"]), "losses": losses,
            "grad_norms": self.record["grad_norms"],
            "final_loss": losses[-1] if losses else None, "seconds": self.record["seconds"] + session,
            "samples_per_s": self.samples_seen / session if session > 0 and self.samples_seen else None,
            "loss_mean_last_10": float(np.mean(losses[-10:])) if losses else None,
            "validation_set": self.validation.description if self.validation else None, "validation_psnr": points,
            "final_validation_psnr": points[-1]["psnr"] if points else None,
            "plateaus": plateaus(points, self.config["stages"]), "precision": self.precision,
            "distributed": {"world_size": distributed.world_size(), "per_rank_batch": self.per_rank_batch},
            "optimizer_implementation": self.optimizer_implementations,  # per stage trained in this session
            "loader_workers": self.loader_workers, "loader_threads": self.loader_threads, "compile": self.compile_step,
        }


PLATEAU_TAIL = 0.2
PLATEAU_DB = 0.1
"""A stage has converged when its validation PSNR gained less than PLATEAU_DB over its last PLATEAU_TAIL of steps."""


def _gain(points: list[dict[str, Any]], start: float, end: float) -> tuple[int, float] | None:
    """(step, PSNR gained) from the last point at or before step ``start`` to the last at or before ``end``."""
    first = [p for p in points if p["step"] <= start]
    last = [p for p in points if p["step"] <= end]
    if not first or last[-1] is first[-1]:
        return None
    return first[-1]["step"], last[-1]["psnr"] - first[-1]["psnr"]


def plateaus(points: list[dict[str, Any]], stages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per stage with a validation point at or before 80 % of its steps and one after: the PSNR gained
    from the last such point to the stage's last point (``gain_db``) and whether that is under
    :data:`PLATEAU_DB` (``plateau``), the convergence test of a budget.

    A learning-rate decay inside the last 20 % flattens the curve whether or not the model had
    converged, so a stage with ``lr_decay_at`` also gets ``before_decay``: the gain over the 20 % of its
    steps before the first decay (from the last point at or before its start to the last before the
    decay). Well under :data:`PLATEAU_DB` there, the stage had converged at its full rate; well above,
    more steps would still pay.

    >>> points = [{"stage": "a", "step": s, "psnr": p} for s, p in ((20, 18.0), (40, 20.0), (60, 20.5), (80, 21.0),
    ...                                                               (100, 21.05))]
    >>> plateaus(points, [{"name": "a", "steps": 100, "lr_decay_at": [0.75]}])
    [{'stage': 'a', 'from_step': 80, 'gain_db': 0.05..., 'plateau': True, 'before_decay': {'from_step': 40, 'gain_db': 0.5}}]
    """
    found = []
    for stage in stages:
        mine = [p for p in points if p["stage"] == stage["name"]]
        tail = _gain(mine, (1 - PLATEAU_TAIL) * stage["steps"], stage["steps"])
        if tail is None:
            continue
        entry = {"stage": stage["name"], "from_step": tail[0], "gain_db": tail[1], "plateau": tail[1] < PLATEAU_DB}
        if stage.get("lr_decay_at"):
            decay = math.floor(min(stage["lr_decay_at"]) * stage["steps"])  # the first step at the lower rate
            before = _gain(mine, decay - PLATEAU_TAIL * stage["steps"], decay)
            if before is not None:
                entry["before_decay"] = {"from_step": before[0], "gain_db": before[1]}
        found.append(entry)
    return found


def _finish(run_dir: Path, model: torch.nn.Module, record: dict[str, Any]) -> None:
    """Record, then weights, then drop the checkpoint: each step atomic, so any interruption resumes."""
    (run_dir / PROGRESS).unlink(missing_ok=True)  # training is over (before model.pt: a finished run has none)
    atomic_write_text(run_dir / RECORD, json.dumps(record, indent=1) + "\n")
    with atomic_path(run_dir / FINAL, suffix=".pt") as tmp:
        torch.save(model.state_dict(), tmp)
    (run_dir / CHECKPOINT).unlink(missing_ok=True)  # optimiser state only while training: one weights file


def train(
    model: torch.nn.Module,
    config: dict[str, Any],
    manifest: Manifest,
    root: Path,
    run_dir: Path,
    *,
    device: str = "cpu",
    cache_dir: Path | None = None,
    loader_workers: int | None = None,
    loader_threads: bool = False,
    compile: bool = False,
    scheduler: str = "local",
    on_step: Callable[[int, int, float], None] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train ``model`` through the config's stages, resuming from ``run_dir/checkpoint.pt``.

    Returns the training record, also written to ``run_dir/training.json`` (by rank 0): steps, losses
    (one per step, the mean over the global batch), ``grad_norms`` (one per step: the gradients' L2 norm before
    clipping, ``None`` where not finite; older records lack it), validation PSNR points, ``seconds`` (training time
    over every session), samples/s (global, this session), ``plateaus`` (:func:`plateaus`: has each stage
    converged), ``precision``, ``loader_workers``, ``loader_threads``, ``compile`` and ``distributed``
    (``world_size`` and each stage's ``per_rank_batch`` in this session), ``optimizer_implementation`` (per stage
    trained in this session, :func:`optimizer_implementation`). A finished run
    (``model.pt`` present) loads its weights and returns the stored record. ``config["precision"]``
    (default ``fp32``) sets autocast; ``compile`` runs the training step through :func:`torch.compile`;
    ``scheduler`` builds the preprocessing cache (:func:`isp_bench.parallel.executor`; same bytes on any).
    ``loader_workers``: DataLoader worker processes (default :func:`isp_bench.devices.loader_workers`: none
    on the CPU, one per spare core on a GPU), threads of this process with ``loader_threads``; the batches,
    hence the weights, are the same with any number of either.
    ``on_step(stage index, step, loss)`` is called after each step (and its checkpoint).
    """
    main = distributed.is_main()
    run_dir.mkdir(parents=True, exist_ok=True)
    if (run_dir / FINAL).exists():
        return _load_finished(model, run_dir, main)
    _check_objective_args(config)
    _check_illuminant_gains(config, model)
    started = time.perf_counter()
    configure_for_speed(device)
    loader_workers = resolve_loader_workers(loader_workers, device, distributed.local_world_size(),
                                            threads=loader_threads)
    model.to(device, memory_format=memory_format(device))
    checkpoint = _restore(model, config, manifest, root, cache_dir, scheduler, run_dir / CHECKPOINT)
    if main:  # an interrupted session's, until this one's first validation point
        (run_dir / PROGRESS).unlink(missing_ok=True)
        for name in (CHECKPOINT, FINAL):  # a write killed before its rename (kill -9) left its temporary file
            for stale in run_dir.glob(f".{name}.*"):
                stale.unlink(missing_ok=True)
    session = _Session(
        model=model, config=config, device=device, checkpoint_path=run_dir / CHECKPOINT,
        stage_batches=lambda k, first: _stage_loader(config, k, first, manifest, root, cache_dir, loader_workers,
                                                     threads=loader_threads, pin_memory=torch.device(device).type == "cuda",
                                                     scheduler=scheduler),
        validation=Validation(config, manifest, root, cache_dir, scheduler) if config["stages"] and main else None,
        record=_record_so_far(checkpoint), started=started, main=main, compile_step=compile,
        loader_workers=loader_workers, loader_threads=loader_threads, on_step=on_step,
        show_progress=progress and main)
    start_stage, start_step = (checkpoint["stage"], checkpoint["step"]) if checkpoint is not None else (0, 0)
    for k in range(start_stage, len(config["stages"])):
        session.train_stage(k, start_step if k == start_stage else 0, checkpoint if k == start_stage else None)
    for p in model.parameters():
        p.requires_grad_(True)
    resumed_from = {"stage": start_stage, "step": start_step} if checkpoint is not None else None
    summary = session.summary(resumed_from)
    if main:
        _finish(run_dir, model, summary)
    return summary
