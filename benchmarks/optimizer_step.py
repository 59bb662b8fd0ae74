"""Seconds of one optimiser update of each learned model's parameters (the mean of ``--steps``), per
implementation torch offers:
``for-loop`` (kernels per parameter: torch's default on the CPU), ``foreach`` (one kernel per operation over all
parameters) and ``fused`` (one kernel for the whole update: what the trainer uses wherever it exists, see
:func:`isp_bench.train.trainer.build_optimizer`), with each model's recipe's optimiser (Adam for all of them).
The update is the same up to rounding; ``max_abs_difference`` is the largest difference of a parameter from the
for-loop's after ``--steps`` updates with the same gradients.

Rerun:  python benchmarks/optimizer_step.py [--models crispnet,unet,...] [--device cpu] [--steps 10]

Writes ``benchmarks/results/optimizer_step-<device>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import time

import torch

from _common import provenance, save, sync

from isp_bench.devices import resolve_device
from isp_bench.models import create_model, list_models
from isp_bench.train.recipe import default_recipe, resolve_recipe
from isp_bench.train.trainer import build_optimizer, optimizer_implementation

IMPLEMENTATIONS = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {}}


def measure(model_name: str, device: str, steps: int) -> dict:
    config = resolve_recipe(default_recipe(model_name), budget="short")
    torch.manual_seed(0)
    model = create_model(model_name).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    grads = [torch.randn_like(p) for p in params]
    figures: dict = {"parameters": sum(p.numel() for p in params), "optimizer": config["optimizer"]["name"]}
    reference = None
    for name, kwargs in IMPLEMENTATIONS.items():
        weights = [p.detach().clone().requires_grad_(True) for p in params]
        optimizer = build_optimizer(weights, {**config["optimizer"], **kwargs}, 1e-4)
        if optimizer_implementation(optimizer) != name:  # fused unavailable here: torch's default instead
            figures[f"{name}_s"] = None
            continue
        for w, g in zip(weights, grads):
            w.grad = g

        optimizer.step()  # the state's first allocation is not an update's cost
        sync(device)
        started = time.perf_counter()
        for _ in range(steps):
            optimizer.step()
        sync(device)
        figures[f"{name}_s"] = (time.perf_counter() - started) / steps
        reference = reference if reference is not None else weights
        figures[f"{name}_max_abs_difference"] = max(float((w - r).detach().abs().max())
                                                    for w, r in zip(weights, reference))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(list_models(include_reported_only=False)))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    device = resolve_device(args.device)
    started = time.time()
    results = {}
    for name in args.models.split(","):
        if not resolve_recipe(default_recipe(name), budget="short").get("optimizer"):
            continue  # not trained by gradient descent (the classic pipeline, DJDD's data-fitted one)
        results[name] = measure(name, device, args.steps)
        r = results[name]
        print(f"{name:<20} {r['parameters'] / 1e6:6.2f} M params  " + "  ".join(
            f"{impl} {r[impl + '_s']:.4f} s" if r.get(impl + "_s") is not None else f"{impl} —"
            for impl in IMPLEMENTATIONS), flush=True)
    path = save(f"optimizer_step-{device.split(':')[0]}",
                {"device": device, "steps": args.steps, "models": results, "seconds": time.time() - started,
                 "provenance": provenance(("isp-bench", "torch"), torch_threads=torch.get_num_threads())})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
