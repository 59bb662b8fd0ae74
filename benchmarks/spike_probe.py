"""Where does a training run's loss spike come from? Replays the run on the CPU up to its largest loss and looks inside.

Rerun (RUN a run folder with its ``config.json`` and ``training.json``, or, for a run still training, which has no
``training.json`` yet, with ``--step``; minutes: the replay trains every step up to the spike, about 5 minutes for
step 1 091 of crispnet-noglobal at 4 x 128^2 on 2 CPU cores, 12 for step 185 of a 16 x 256^2 CRISPnet)::

    python benchmarks/spike_probe.py RUN [--step N] [--before 10]

The run's own config (recipe, seed, budget, precision) is trained again from scratch in a temporary folder, with the
trainer's own loader, on the CPU. Training on the same processor model, torch version and thread count repeats the
record bit for bit (a run on 2 CPU cores does); the replay says from which step its losses first differ from the
record (on another machine or a GPU record they differ early, and the spike may not come back). For the
``--before`` steps up to step N (default: the record's largest loss) and two after it:

- per module (every leaf and every child of the model and of its top-level parts), the largest absolute value of its
  output: where along the network the signal grows;
- per parameter, the norm of that step's update beside the weight's norm (its relative size: Adam moves every weight
  by about the learning rate whatever the gradient's size, so a wide layer with small weights is moved most).

Measured (2 CPU cores, fp32, 2026-11-30, commit 695ba74; crispnet-noglobal on the standard schedule at 4 x 128^2,
``benchmarks/recipes/crispnet-noglobal-cpu.yaml --seed 1``, whose loss reached 4.1e5 at step 1 091 against a
median of 0.003): replayed bit for bit. Ten steps before the spike, with the loss still normal, the four residual
blocks of the 512-channel bottleneck already amplify the signal 5-10 times each (largest activation 0.04 into the
first, 30 out of the last); at lr 5e-4 every step changes the last convolution of each residual branch by 5-9 % of
its norm and the first by 1-2 % (the encoder's: 0.1-1.3 %). The loss jumped to 705 at step 1 083 (bottleneck
output 358) and to 4.1e5 at 1 091 (9.5e4): a bottleneck without normalisation that Adam's lr-sized steps drive into
amplification, not a bad batch or a rounding error.

Writes benchmarks/results/spike-probe.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import provenance, save

from isp_bench.models import create_model
from isp_bench.runs import resolve_dataset
from isp_bench.train.trainer import train


class _Stop(Exception):
    """Raised from the trainer's step callback once the probed steps are done."""


def probe(config: dict, first: int, last: int) -> dict:
    """Train ``config`` from scratch on the CPU up to global step ``last``; the losses of every step, and for the
    steps ``first``..``last`` each module's largest |output| and each parameter's update and weight norms."""
    manifest, root = resolve_dataset(config["dataset"], progress=False)
    torch.manual_seed(config["seed"])  # as run_benchmark seeds the model's initialisation
    model = create_model(config["model"])
    out: dict = {"losses": [], "activation_max": {}, "update_norm": {}, "weight_norm": {}}
    state = {"step": 0, "watch": first == 0, "before": {}}

    def watch(name):
        def hook(module, inputs, output):
            if state["watch"] and isinstance(output, torch.Tensor):  # the step's training forward, not a validation
                out["activation_max"].setdefault(name, {}).setdefault(state["step"], float(output.detach().abs().max()))
        return hook

    for name, module in model.named_modules():
        if name and (not list(module.children()) or name.count(".") <= 1):
            module.register_forward_hook(watch(name))

    def weights():
        return {name: p.detach().clone() for name, p in model.named_parameters()}

    if state["watch"]:
        state["before"] = weights()

    def on_step(stage: int, step: int, loss: float) -> None:
        done = state["step"]  # the global step just taken
        out["losses"].append(loss)
        if state["watch"]:
            for name, p in model.named_parameters():
                out["update_norm"].setdefault(name, {})[done] = float((p.detach() - state["before"][name]).norm())
                out["weight_norm"].setdefault(name, {})[done] = float(p.detach().norm())
        if done >= last:
            raise _Stop
        state["step"] = done + 1
        state["watch"] = first <= state["step"] <= last
        if state["watch"]:
            state["before"] = weights()

    with tempfile.TemporaryDirectory() as tmp:
        try:
            train(model, config, manifest, root, Path(tmp), device="cpu", progress=False, on_step=on_step)
        except _Stop:
            pass
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a run folder (config.json, and training.json unless --step is given)")
    parser.add_argument("--step", type=int, help="the global step to look at (default: the record's largest loss)")
    parser.add_argument("--before", type=int, default=10, help="steps before it to look at (default: %(default)s)")
    args = parser.parse_args(argv)
    config = json.loads((args.run / "config.json").read_text())
    record = args.run / "training.json"
    recorded = json.loads(record.read_text())["losses"] if record.exists() else None
    if recorded is None and args.step is None:
        parser.error(f"{record} not found (a run still training has none yet): give --step N")
    step = args.step if args.step is not None else max(range(len(recorded)), key=lambda s: recorded[s] or 0.0)
    last = min(step + 2, sum(stage["steps"] for stage in config["stages"]) - 1)
    first = max(0, step - args.before)
    found = probe(config, first, last)
    differs = None
    if recorded is None:
        against = "no record to compare with (no training.json)"
    else:
        differs = next((s for s, (a, b) in enumerate(zip(found["losses"], recorded)) if a != b), None)
        against = f"recorded loss {recorded[step]:.4g}; replayed " + (
            "bit for bit" if differs is None else
            f"differently from step {differs} ({found['losses'][differs]:.9g} against {recorded[differs]:.9g})")
    print(f"{args.run.name}: step {step}, {against}; loss at step {step} now {found['losses'][step]:.4g}")
    steps = range(first, last + 1)
    print(f"{'largest |output|':32s}" + "".join(f"{s:>9d}" for s in steps))
    for name, values in found["activation_max"].items():
        print(f"{name:32s}" + "".join(f"{values.get(s, float('nan')):9.3g}" for s in steps))
    print(f"{'update / weight norm':32s}" + "".join(f"{s:>9d}" for s in steps))
    for name, updates in found["update_norm"].items():
        if name.endswith("weight") and found["weight_norm"][name][first] > 0:
            weight = found["weight_norm"][name]
            print(f"{name:32s}" + "".join(f"{updates[s] / weight[s]:9.2%}" for s in steps))
    report = {"provenance": provenance(("isp-bench", "torch")), "run": args.run.name, "config": config,
              "step": step, "replay_differs_from_step": differs,
              "recorded_losses": recorded and recorded[: last + 1], **found}
    print(f"wrote {save('spike-probe', report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
