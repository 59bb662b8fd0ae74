"""Does this device's training arithmetic give the gradient that a careful reference gives? Per model and stage.

Rerun:  python benchmarks/gradient_check.py [--device auto] [--models crispnet,unet-resbottleneck,...]
                                            [--budget standard] [--precisions bf16,fp32]
        (about a minute on a GPU host, most of it the float64 reference on its cores; 3 minutes on 2 CPU cores)

For each model and each stage of its default recipe: the stage's first training batch (the trainer's own loader,
seed 0, ``--budget``'s batch and patch), the model as training starts it (seeded initialisation, and the recipe's
data-fitted one), and one forward and backward pass of the stage's objective, computed

- as training computes it on this device, in each of ``--precisions`` (default: the device's training precision
  and fp32): autocast, and on CUDA channels-last, TF32 and cuDNN autotuning (:func:`configure_for_speed`);
- as the reference: float64 on the CPU (contiguous, no autocast).

Reported per precision: the loss beside the reference's, and for the gradient of the trainable parameters taken
as one vector its cosine with the reference's, its norm over the reference's, and the parameter with the lowest
cosine. 16-bit autocast rounds activations, so its gradient is not the reference's, but a cosine below
:data:`SUSPECT_COSINE` is more than rounding.

Why: the UNet-resbottleneck's standard run on an H200 (bf16) leapt from a loss of 0.015 to 0.24 at step 169 and to
106 soon after, while the same steps on a CPU (fp32 or bf16, the same data) followed its losses to 3 decimals up
to step 168 and then went on falling: nearly the same weights and the same batch gave the GPU an update the CPU
did not (pytorch/pytorch#150700 reports cuDNN gradients on H100 far from the CPU's; #163539 wrong bf16 convolutions for
large inputs since cuDNN 9.10.2). At the first step the weights are not those of step 168, so a clean result here
does not clear the GPU, but a bad one convicts it.

Measured on 2 CPU cores (torch 2.14, ``--precisions bf16,fp32``, the standard budget's batches, 2026-11-29): fp32
cosine 1.00000 for every model and stage; bf16 autocast 0.99995–0.99999 (norm ratio 0.997–1.003).

Writes benchmarks/results/gradient-check-<device>.json.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import sys
from pathlib import Path
from typing import Any

import torch

SUSPECT_COSINE = 0.99
"""A gradient whose cosine with the float64 reference is below this is flagged (``suspect``)."""
NEGLIGIBLE = 1e-6
"""A parameter whose reference gradient's norm is below this fraction of the whole gradient's has no worst cosine."""
MODELS = "crispnet,unet-resbottleneck,deepisp,unet,cameranet"


def _stage_gradient(model: torch.nn.Module, stage: dict[str, Any], batch: dict[str, Any], device: str,
                    precision: str | None) -> tuple[float, dict[str, torch.Tensor]]:
    """The loss and the trainable parameters' gradients (float64, CPU) of one pass of ``stage``'s objective on a
    copy of ``model``: as training computes it on ``device`` in ``precision``, or in float64 on the CPU (``None``)."""
    from isp_bench.devices import autocast, grad_scaler, memory_format, to_device
    from isp_bench.train.losses import get_objective
    from isp_bench.train.trainer import _set_trainable

    model = copy.deepcopy(model)
    if precision is None:
        device, precision = "cpu", "fp32"  # autocast off
        model = model.double()
        batch = {k: v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v
                 for k, v in batch.items()}
    model = model.to(device, memory_format=memory_format(device))
    batch = to_device(batch, device, memory_format(device))
    _set_trainable(model, stage["trainable"])
    model.train()
    with autocast(device, precision):
        loss = get_objective(stage["objective"])(model, batch, **stage["objective_args"])
    scaler = grad_scaler(device, precision)  # fp16 trains with its loss scaled (else small gradients underflow)
    scaler.scale(loss).backward()
    scale = scaler.get_scale() if scaler.is_enabled() else 1.0
    grads = {name: p.grad.detach().double().cpu() / scale for name, p in model.named_parameters()
             if p.grad is not None}
    return float(loss.detach()), grads


def compare(grads: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Cosine and norm ratio of ``grads`` against ``reference`` as whole vectors, and the parameter with the
    lowest cosine among those whose reference gradient counts (:data:`NEGLIGIBLE` of the whole or more: a
    gradient that is zero in exact arithmetic, as an attention key's bias has, is rounding noise in any)."""
    names = sorted(reference)
    a = torch.cat([grads[n].flatten() for n in names])
    b = torch.cat([reference[n].flatten() for n in names])
    worst, worst_cosine = None, math.inf
    for name in names:
        g, r = grads[name].flatten(), reference[name].flatten()
        if r.norm() >= NEGLIGIBLE * b.norm():
            cosine = float(g @ r / (g.norm() * r.norm())) if g.norm() > 0 else 0.0
            if cosine < worst_cosine:
                worst, worst_cosine = name, cosine
    cosine = float(a @ b / (a.norm() * b.norm()))
    return {"cosine": cosine, "norm_ratio": float(a.norm() / b.norm()), "worst_parameter": worst,
            "worst_parameter_cosine": worst_cosine, "suspect": cosine < SUSPECT_COSINE}


def check_model(name: str, budget: str, device: str, precisions: list[str], manifest, root: Path) -> list[dict]:
    """One row per stage of ``name``'s default recipe (see the module notes)."""
    from isp_bench.data.cache import cache_folder
    from isp_bench.devices import configure_for_speed
    from isp_bench.models import create_model
    from isp_bench.train.recipe import default_recipe, resolve_recipe
    from isp_bench.train.trainer import _init_from_data, _stage_loader

    config = resolve_recipe(default_recipe(name), budget=budget)
    configure_for_speed(device)
    torch.manual_seed(config["seed"])
    model = create_model(name)
    cache = cache_folder(root)
    if config.get("init"):
        _init_from_data(model, config, manifest, root, cache, "local")
    rows = []
    for k, stage in enumerate(config["stages"]):
        batch = next(iter(_stage_loader(config, k, 0, manifest, root, cache, workers=0)))
        reference_loss, reference = _stage_gradient(model, stage, batch, device, None)
        row = {"model": name, "stage": stage["name"], "batch_size": stage["batch_size"], "patch": stage["patch"],
               "reference_loss": reference_loss, "precisions": {}}
        for precision in precisions:
            loss, grads = _stage_gradient(model, stage, batch, device, precision)
            row["precisions"][precision] = {"loss": loss, **compare(grads, reference)}
        rows.append(row)
    return rows


def describe(row: dict) -> str:
    parts = [f"{row['model']:18s} {row['stage']:16s} reference loss {row['reference_loss']:.5g}"]
    for precision, figures in row["precisions"].items():
        parts.append(f"{precision}: loss {figures['loss']:.5g}, gradient cosine {figures['cosine']:.5f}, "
                     f"norm ×{figures['norm_ratio']:.4f}, worst {figures['worst_parameter']} "
                     f"({figures['worst_parameter_cosine']:.4f}){'  SUSPECT' if figures['suspect'] else ''}")
    return "\n    ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--models", default=MODELS)
    parser.add_argument("--budget", default="standard", help="whose batch and patch (default: %(default)s)")
    parser.add_argument("--precisions", help="comma-separated (default: the device's training precision, and fp32)")
    args = parser.parse_args()

    from _common import provenance, save
    from isp_bench.devices import resolve_device, resolve_precision
    from isp_bench.runs import resolve_dataset

    device = resolve_device(args.device)
    precisions = (args.precisions.split(",") if args.precisions
                  else list(dict.fromkeys([resolve_precision("auto", device), "fp32"])))
    os.chdir(Path(__file__).resolve().parents[1])  # the embedded set where `isp-bench run` keeps it
    manifest, root = resolve_dataset("synth", progress=False)
    payload = {"benchmark": "gradient-check", "device": device, "budget": args.budget, "precisions": precisions,
               "suspect_below_cosine": SUSPECT_COSINE, "rows": [],
               "provenance": provenance(("isp-bench", "torch"), device=device, argv=sys.argv[1:])}
    for name in args.models.split(","):
        try:
            rows = check_model(name, args.budget, device, precisions, manifest, Path(root))
        except Exception as error:  # noqa: BLE001 — one model's failure is reported, the others still checked
            rows = [{"model": name, "error": f"{type(error).__name__}: {error}"}]
            print(f"{name:18s} failed: {rows[0]['error']}", flush=True)
        else:
            for row in rows:
                print(describe(row), flush=True)
        payload["rows"].extend(rows)
        path = save(f"gradient-check-{device.replace(':', '')}", payload)  # after each model: a cut-off run keeps
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
