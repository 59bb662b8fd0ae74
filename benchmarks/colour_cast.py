"""How much of a trained run's ΔE76 is a global colour cast, and what do its global inputs do?

Rerun (each RUN a trained run folder holding its ``model.pt``, e.g. after ``isp-bench run``, or its ``reproduction/``
folder; a minute or two per run on 2 CPU cores, seconds on a GPU: ``--device auto`` is the default)::

    python benchmarks/colour_cast.py runs/synth-crispnet-standard-seed0-a733cf05 \\
        runs/synth-unet-resbottleneck-standard-seed0-338cf3e6 runs/synth-classic-short-seed0-03cb8581

Per run, its test split rendered as ``isp-bench evaluate`` renders it (the run's precision, tiled, full
resolution), then per frame and on average, in CIE 1976 L*a*b* (the ``delta_e76`` metric's pipeline):

- ΔE76 as scored, and ΔE76 once the prediction is corrected in linear light by the least-squares per-channel gain
  (a white-balance error) and by the least-squares 3×3 matrix (any global colour transform); what remains after
  them is not global;
- the mean offset ΔL*, Δa*, Δb* (the direction of the cast) and mean chroma C* against the target's.

For models with global inputs (:attr:`IspModel.metadata`):

- ``wb``: test PSNR with every frame given, in turn, each as-shot white balance of the training split (a model
  that uses its WB input moves; one that ignores it does not);
- a global branch (``compute_global``): its output replaced by its mean over the training frames, on the train
  and test splits (how much the model relies on it), and each frame's distance from that mean (relative L2).

Measured on 2 CPU cores (2026-11-30, commit 98d2a6b, the three runs above): CRISPnet standard ΔE76 9.31 -> 5.77 with
per-channel gains (UNet-resbottleneck 6.92 -> 5.68, classic 7.49 -> 6.44); CRISPnet's test PSNR moves 26.60-26.94 dB
over the six training lights' WB (it all but ignores its WB input), its global branch set to the training mean costs
2.3 dB on the train split and 3.1 on test, and every frame sits 0.8-1.4 (relative) from that mean. Trained with
illuminant gains (2026-11-30, commit 980e964, run synth-crispnet-illuminant-standard-seed0-7a4b0cc2 with its
weights, in the git-ignored work/cpu-standard/, where it trained): ΔE76 5.33 -> 5.28 with per-channel gains, test
PSNR 14.0-27.7 dB over the training lights' WB, the global branch at its training mean < 0.01 dB, every frame
0.01-0.08 from that mean.

Writes benchmarks/results/colour-cast.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import provenance, save

from isp_bench.colorimetry import srgb_decode, srgb_encode
from isp_bench.data.dataset import PairDataset
from isp_bench.devices import resolve_device
from isp_bench.evaluate.scoring import evaluate_model, pair_truth, prediction_path
from isp_bench.images import read_image
from isp_bench.metrics.color import delta_e76, srgb_to_lab
from isp_bench.models import create_model
from isp_bench.runs import REPRODUCTION, resolve_dataset, weights_file
from isp_bench.train.trainer import FINAL


def cast(prediction: np.ndarray, target: np.ndarray) -> dict:
    """The figures of one frame (both H×W×3 display sRGB in [0, 1]), through the metric's own pipeline."""
    pred_lin, target_lin = srgb_decode(prediction), srgb_decode(target)
    x, y = pred_lin.reshape(-1, 3), target_lin.reshape(-1, 3)
    gains = (x * y).sum(0) / (x * x).sum(0)
    matrix = np.linalg.lstsq(x, y, rcond=None)[0]
    def corrected(linear):
        return srgb_encode(np.clip(linear, 0, 1).reshape(target.shape))
    pred_lab, target_lab = srgb_to_lab(prediction), srgb_to_lab(target)
    def chroma(lab):
        return float(np.hypot(lab[..., 1], lab[..., 2]).mean())
    return {
        "delta_e76": delta_e76(prediction, target),
        "delta_e76_after_channel_gains": delta_e76(corrected(x * gains), target),
        "delta_e76_after_3x3": delta_e76(corrected(x @ matrix), target),
        "channel_gains": gains.round(4).tolist(),
        "mean_delta_lab": (pred_lab - target_lab).reshape(-1, 3).mean(0).round(3).tolist(),
        "chroma": chroma(pred_lab), "target_chroma": chroma(target_lab),
    }


def load_run(run_dir: Path):
    """The run's resolved config and its trained model; ``run_dir`` may be a run's ``reproduction/`` folder (the
    config is its run's; the weights its own, or the run's when the reproduction reused them)."""
    reproduction = run_dir.name == REPRODUCTION
    config = json.loads(((run_dir.parent if reproduction else run_dir) / "config.json").read_text())
    model = create_model(config["model"])
    if (weights := weights_file(run_dir)).exists():
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    elif config["stages"]:
        raise SystemExit(f"{run_dir}: no {FINAL}; train it first (`isp-bench run --recipe {config['recipe']} "
                         f"--budget {config['budget']} --precision {config['precision']}`)")
    return config, model.eval()


def mean_psnr(model, manifest, root, split: str, precision: str, device: str) -> float:
    frame, _ = evaluate_model(model, manifest, root, split=split, metrics=("psnr",), device=device,
                              precision=precision, n_previews=0, progress=False)
    return round(float(frame["psnr"].mean()), 3)


def probe_inputs(model, manifest, root, precision: str, device: str, test_psnr: float) -> dict:
    """Test PSNR under each training light's as-shot WB; the global branch replaced by its training mean
    (``test_psnr``: the model's own, already measured)."""
    out: dict = {}
    render, metadata = model.render, getattr(model, "metadata", ())
    if "wb" in metadata:
        lights = sorted({tuple(r["wb_as_shot"]) for r in manifest.rows() if r["split"] == "train"})
        out["test_psnr_by_forced_wb"] = {}
        for r, g, b in lights:
            forced = torch.tensor([[r, g, g, b]])
            model.render = lambda batch, forced=forced: render({**batch, "wb": forced.to(batch["wb"])})
            out["test_psnr_by_forced_wb"][f"{r:.3f},{g:.3f},{b:.3f}"] = mean_psnr(model, manifest, root, "test",
                                                                                   precision, device)
        model.render = render
    if "thumb" in metadata and hasattr(model, "compute_global"):
        def global_of(split):
            dataset = PairDataset(manifest, root, split, progress=False)
            values = {}
            for i in range(len(dataset)):
                sample = dataset[i]
                batch = {k: v[None].to(device) for k, v in sample.items() if isinstance(v, torch.Tensor)
                         and k not in ("target", "linear_target")}
                with torch.no_grad():
                    values[sample["pair_id"]] = {k: v.float() for k, v in model.compute_global(batch).items()}
            return values
        train, test = global_of("train"), global_of("test")
        mean = {k: torch.stack([v[k] for v in train.values()]).mean(0) for k in next(iter(train.values()))}
        def distance(v):
            return round(float(sum((v[k] - mean[k]).norm() ** 2 for k in mean) ** 0.5
                               / sum(m.norm() ** 2 for m in mean.values()) ** 0.5), 3)
        out["global_distance_from_train_mean"] = {pid: distance(v) for pid, v in {**train, **test}.items()}
        compute_global = model.compute_global
        model.compute_global = lambda batch, tiler=None: {k: v.to(batch["raw"]) for k, v in mean.items()}
        out["psnr_with_global_at_train_mean"] = {s: mean_psnr(model, manifest, root, s, precision, device)
                                                 for s in ("train", "test")}
        model.compute_global = compute_global
        out["psnr"] = {"train": mean_psnr(model, manifest, root, "train", precision, device), "test": test_psnr}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="trained run folders (with model.pt)")
    parser.add_argument("--device", default="auto", help="where to render (default: %(default)s)")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    report = {"provenance": provenance(("isp-bench", "torch", "colour-science")), "device": device, "runs": {}}
    for run_dir in args.runs:
        config, model = load_run(run_dir)
        manifest, root = resolve_dataset(config["dataset"], progress=False)
        if config["eval"]["split"] != "test":
            raise SystemExit(f"{run_dir}: evaluated on {config['eval']['split']!r}; this script reads test runs")
        with tempfile.TemporaryDirectory() as tmp:
            scored, _ = evaluate_model(model, manifest, root, split="test", metrics=("psnr",), device=device,
                                       precision=config["precision"], predictions_dir=Path(tmp), n_previews=0,
                                       progress=False)
            test = PairDataset(manifest, root, "test", progress=False)  # the cache evaluate_model built: the truth
            frames = {row["pair_id"]: cast(read_image(prediction_path(Path(tmp), row["pair_id"])) / 65535,
                                           pair_truth(test.cache, row, "target"))
                      for row in test.rows}
        keys = ("delta_e76", "delta_e76_after_channel_gains", "delta_e76_after_3x3")
        mean = {k: round(float(np.mean([f[k] for f in frames.values()])), 3) for k in keys}
        mean["mean_delta_lab"] = np.mean([f["mean_delta_lab"] for f in frames.values()], 0).round(3).tolist()
        recorded = ("model", "recipe", "budget", "precision", "seed", "manifest_content_hash")
        entry = {"config": {k: config[k] for k in recorded},
                 "mean": mean, "frames": frames, **probe_inputs(model, manifest, root, config["precision"], device,
                                                                  round(float(scored["psnr"].mean()), 3))}
        name = f"{run_dir.parent.name}/{REPRODUCTION}" if run_dir.name == REPRODUCTION else run_dir.name
        report["runs"][name] = entry
        print(f"{name}: dE76 {mean['delta_e76']:.2f}, after per-channel gains "
              f"{mean['delta_e76_after_channel_gains']:.2f}, after a 3x3 {mean['delta_e76_after_3x3']:.2f}")
        for pair_id, f in frames.items():
            print(f"  {pair_id:44s} dE76 {f['delta_e76']:5.2f} -> {f['delta_e76_after_channel_gains']:5.2f} "
                  f"(gains {f['channel_gains']}) -> {f['delta_e76_after_3x3']:5.2f}; mean dL*, da*, db* "
                  f"{f['mean_delta_lab']}")
        for key in ("test_psnr_by_forced_wb", "psnr", "psnr_with_global_at_train_mean"):
            if key in entry:
                print(f"  {key}: {entry[key]}")
        if "global_distance_from_train_mean" in entry:
            d = entry["global_distance_from_train_mean"].values()
            print(f"  global branch, distance of a frame's output from the training mean: {min(d):.2f}-{max(d):.2f}")
    print(f"wrote {save('colour-cast', report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
