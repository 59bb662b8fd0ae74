"""Where training time goes: per model and device, training throughput with the real loader and with
tensors already on the device, achieved GFLOP/s against the device's measured matmul roof, peak
memory, and inference seconds per 12 MP (4032×3024) frame.

Rerun:  python benchmarks/train.py [--device auto] [--models unet,cameranet,crispnet,deepisp]
                                   [--steps 5] [--budget short] [--threads N]
        python benchmarks/train.py --device cuda --budget standard        (on a GPU)
        python benchmarks/train.py --inference-only --models cameranet,deepisp

It measures on the embedded synthetic set where ``isp-bench run`` keeps it (``work/synth`` of the
repository, made when absent). For each model (its default recipe's last stage: objective,
trainable parameters, batch size and patch of ``--budget``), measured in a fresh process so that peak
memory is the model's own, and written to the results file as soon as it is measured (a model that
fails is recorded with its error and the others are still measured):

- ``real_patches_per_s``: ``--steps`` consecutive training steps fed by the trainer's own loader
  (memory-mapped cache, CFA-exact augmentation, host→device copy; the trainer's default loader
  workers: none on the CPU, one per spare core on a GPU), after one warm-up step: the sustained rate,
  once the workers' prefetched batches are used up (give more steps than workers × 2);
- ``synthetic_patches_per_s``: the fastest of ``--steps`` steps on one batch already on the device (load
  on a shared machine only adds time); ``loader_share`` = 1 − real / synthetic is the fraction of a
  step the loader (and the host's share of a step) costs;
- ``train_gflop_per_s``: 2 FLOP/MAC × 3 × the forward MACs of a batch (backward ≈ 2× forward; the
  MACs counted as ``isp-bench models`` counts them: convolutions, linear layers, attention) per
  synthetic step (this counts what the model computes; a stage that trains part of the model does
  less backward work), and ``roof_fraction``: that over the roof, the best GFLOP/s of a large fp32 matmul
  (n = 4096 on CUDA, 2048 on the CPU) on the same device and threads;
- ``budget_train_s``: the ``--budget``'s training patches (every stage's steps × batch) at the real
  rate: the training time to expect (an upper bound for recipes whose earlier stages train part of the
  model), without validation, evaluation and start-up;
- ``peak_memory_mb``: ``torch.cuda.max_memory_allocated`` on CUDA; on the CPU the process's peak
  resident set (``ru_maxrss``: weights, activations, allocator slack and the interpreter, which
  ``baseline_rss_mb`` gives before the model is built) — torch's CPU allocator is invisible to
  tracemalloc, so the RSS peak is the honest figure;
- ``inference_s_per_12mp``: tiled full-frame inference (``infer_full``, tile 512, overlap 64, the
  evaluation's settings) of a 4032×3024 frame made by repeating a test frame of the synthetic set: on
  CUDA the best of 3 after one untimed pass over the same frame (cuDNN's autotuning of the tile shapes
  and the allocator's growth are not counted); on the CPU a 1024×768 frame is timed once after a small
  warm-up and scaled by the pixel ratio (``inference_extrapolated``: true), as a full frame takes minutes there;
- on CUDA also ``inference_whole_frame_s``: the frame as one tile (no overlap, nothing computed twice), the
  protocol of the papers' timings (CameraNet's Table IV); ``inference_top_kernels``: the GPU kernels that took
  the most time in one tiled frame (torch.profiler); the peak memory of each.

``--inference-only`` skips the training figures (about a minute for CameraNet and DeepISP on a GPU) and writes
benchmarks/results/inference-<device>.json instead.

Precision: ``--precision`` as for ``isp-bench run`` (autocast in training and inference, the fp16
gradient scaler, channels_last and TF32 on CUDA). Writes benchmarks/results/train-<device>.json.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

from _common import sync

FULL_FRAME = (3024, 4032)  # 12.2 MP output, height × width
CPU_FRAME = (768, 1024)
INFERENCE_REPEATS = 3
TOP_KERNELS = 12
FLOP_PER_MAC = 2
TRAIN_PASSES = 3  # forward + backward (≈ 2 × forward)


def matmul_roof(device: str, precision: str = "fp32", repeats: int = 5) -> float:
    """Best GFLOP/s of an n×n matmul on ``device`` in ``precision`` (2 n³ FLOP; fp32 with the TF32
    setting the trainer uses on CUDA)."""
    import torch

    from isp_bench.devices import configure_for_speed

    configure_for_speed(device)
    n = 8192 if device.startswith("cuda") else 2048
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    best = float("inf")
    for _ in range(repeats + 1):
        sync(device)
        start = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def measure_model(name: str, budget: str, device: str, precision: str, steps: int, threads: int | None,
                  manifest_path: str, root: str, train: bool = True) -> dict[str, Any]:
    """One model's figures (run in its own process); inference only without ``train``."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    baseline_rss = _rss_mb()
    from isp_bench.devices import configure_for_speed, memory_format
    from isp_bench.manifest import read_manifest
    from isp_bench.models import create_model
    from isp_bench.train.recipe import default_recipe, resolve_recipe

    manifest, root_path = read_manifest(manifest_path), Path(root)
    config = resolve_recipe(default_recipe(name), budget=budget)
    torch.manual_seed(0)
    configure_for_speed(device)
    model = create_model(name).to(device, memory_format=memory_format(device))
    row: dict[str, Any] = {"model": name, "baseline_rss_mb": baseline_rss}
    if train:
        row.update(measure_training(model, config, manifest, root_path, device, precision, steps))
    row.update(measure_inference(model, config, manifest, root_path, device, precision))
    return row


def measure_training(model, config: dict[str, Any], manifest, root_path: Path, device: str, precision: str,
                     steps: int) -> dict[str, Any]:
    """Training patches/s (real loader, on-device), GFLOP/s and peak memory at the last stage of ``config``."""
    import torch

    from isp_bench.devices import autocast, grad_scaler, loader_workers, memory_format, to_device
    from isp_bench.models.flops import count_macs
    from isp_bench.train.losses import get_objective
    from isp_bench.train.trainer import _set_trainable, _stage_loader, build_optimizer, optimizer_step

    budget_patches = sum(s["steps"] * s["batch_size"] for s in config["stages"])
    stage = {**config["stages"][-1], "steps": steps + 1}
    config = {**config, "stages": [stage]}
    scaler = grad_scaler(device, precision)
    objective = get_objective(stage["objective"])
    optimizer = build_optimizer(_set_trainable(model, stage["trainable"]), config["optimizer"], stage["lr"])
    model.train()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)

    def step(batch):
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, precision):
            loss = objective(model, batch, **stage["objective_args"])
        optimizer_step(loss, optimizer, scaler, stage["grad_clip_norm"])

    workers = loader_workers(None, device)
    loader = iter(_stage_loader(config, 0, 0, manifest, root_path, None, workers=workers))
    first = to_device(next(loader), device, memory_format(device))
    step(first)  # warm-up (allocator, cuDNN algorithm choice)

    def seconds_per_step(get_batch, count: int) -> float:
        sync(device)
        start = time.perf_counter()
        for _ in range(count):
            step(get_batch())
        sync(device)
        return (time.perf_counter() - start) / count

    # real: sustained over consecutive steps (the workers' prefetched batches run out, so a loader that
    # cannot keep up shows); on-device: the least disturbed step (a shared machine only ever adds time)
    real_s = seconds_per_step(lambda: to_device(next(loader), device, memory_format(device)), steps)
    synthetic_s = min(seconds_per_step(lambda: first, 1) for _ in range(steps))
    macs = count_macs(model, first).total
    patches = stage["batch_size"]
    return {
        "recipe_stage": stage["name"], "batch_size": patches, "patch": stage["patch"],
        "steps_timed": steps, "loader_workers": workers,
        "real_patches_per_s": patches / real_s, "synthetic_patches_per_s": patches / synthetic_s,
        "loader_share": 1 - synthetic_s / real_s,
        "budget_patches": budget_patches, "budget_train_s": budget_patches / (patches / real_s),
        "forward_gmac_per_batch": macs / 1e9,
        "train_gflop_per_s": FLOP_PER_MAC * TRAIN_PASSES * macs / 1e9 / synthetic_s,
        "peak_memory_mb": torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.startswith("cuda") else _rss_mb(),
        "peak_memory_kind": "cuda max_memory_allocated" if device.startswith("cuda") else "process ru_maxrss",
    }


def measure_inference(model, config: dict[str, Any], manifest, root_path: Path, device: str,
                      precision: str) -> dict[str, Any]:
    """Seconds per 12 MP frame: tiled as the evaluation tiles, and on CUDA also as one whole-frame tile
    (the papers' protocol), with the evaluation tiling's heaviest GPU kernels."""
    import torch

    from isp_bench.data import PairDataset
    from isp_bench.evaluate.tiled import infer_full

    frame = PairDataset(manifest, root_path, "test", inputs=tuple(config["inputs"]), progress=False)[0]
    cuda = device.startswith("cuda")
    height, width = FULL_FRAME if cuda else CPU_FRAME
    raw = frame["raw"][None]
    reps = (1, 1, -(-height // (2 * raw.shape[2])), -(-width // (2 * raw.shape[3])))
    batch = {k: v[None].to(device) for k, v in frame.items()
             if isinstance(v, torch.Tensor) and k not in ("raw", "rgb", "thumb", "target", "linear_target")}
    batch["raw"] = raw.repeat(*reps)[:, :, : height // 2, : width // 2].contiguous().to(device)
    evaluation = {"tile": config["eval"]["tile"], "overlap": config["eval"]["overlap"]}
    whole = {"tile": max(FULL_FRAME), "overlap": 0, "tile_batch": 1}

    def infer(**tiling) -> float:
        sync(device)
        start = time.perf_counter()
        infer_full(model, batch, precision=precision, **tiling)
        sync(device)
        return time.perf_counter() - start

    row: dict[str, Any] = {"inference_frame": [height, width], "inference_extrapolated": not cuda,
                           "inference_tiling": evaluation}
    if not cuda:  # a CPU frame takes seconds to minutes: one small warm-up, one timed frame, scaled
        infer_full(model, {**batch, "raw": batch["raw"][:, :, :64, :64]}, precision=precision)
        row["inference_s_per_12mp"] = infer(**evaluation) * (FULL_FRAME[0] * FULL_FRAME[1]) / (height * width)
        return row
    torch.cuda.reset_peak_memory_stats(device)
    infer(**evaluation)  # warm-up on the frame itself: cuDNN autotunes these tile shapes, the allocator grows
    row["inference_s_per_12mp"] = min(infer(**evaluation) for _ in range(INFERENCE_REPEATS))
    row["inference_peak_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2 ** 20
    try:
        row["inference_top_kernels"] = top_kernels(lambda: infer(**evaluation))
    except Exception as error:  # noqa: BLE001 — the profiler (CUPTI) may be unavailable: keep the timings
        row["inference_top_kernels"] = {"error": f"{type(error).__name__}: {error}"}
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    try:
        infer(**whole)
        row["inference_whole_frame_s"] = min(infer(**whole) for _ in range(INFERENCE_REPEATS))
        row["inference_whole_frame_peak_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2 ** 20
    except Exception as error:  # noqa: BLE001 — out of memory, or a kernel that refuses one 12 MP tile
        row["inference_whole_frame_s"] = None
        row["inference_whole_frame_error"] = f"{type(error).__name__}: {str(error).splitlines()[0]}"
    return row


def top_kernels(run, count: int = TOP_KERNELS) -> dict[str, Any]:
    """The GPU kernels that take the most time in one call of ``run`` (torch.profiler): name, milliseconds and
    calls of each, and the GPU milliseconds of all."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        run()
    events = [e for e in prof.key_averages() if e.device_type.name == "CUDA" and e.self_device_time_total > 0]
    events.sort(key=lambda e: e.self_device_time_total, reverse=True)
    return {"gpu_ms": sum(e.self_device_time_total for e in events) / 1e3,
            "kernels": [{"name": e.key[:120], "ms": e.self_device_time_total / 1e3, "calls": e.count}
                        for e in events[:count]]}


def describe(row: dict[str, Any], roof: float, budget: str) -> str:
    """One model's figures in a line (adds ``roof_fraction`` to ``row``)."""
    text = f"{row['model']:10s} "
    if "train_gflop_per_s" in row:
        row["roof_fraction"] = row["train_gflop_per_s"] / roof
        text += (f"batch {row['batch_size']}×{row['patch'][0]}²: real {row['real_patches_per_s']:.2f} patches/s, "
                 f"on-device {row['synthetic_patches_per_s']:.2f} (loader {row['loader_share']:.0%}); "
                 f"{row['train_gflop_per_s']:.1f} GFLOP/s = {row['roof_fraction']:.0%} of roof; peak "
                 f"{row['peak_memory_mb']:.0f} MB; {budget} budget ~{row['budget_train_s']:.0f} s of training; ")
    text += f"inference {row['inference_s_per_12mp']:.3f} s / 12 MP"
    if row["inference_extrapolated"]:
        text += " (extrapolated)"
    if "inference_whole_frame_s" in row:
        whole = row["inference_whole_frame_s"]
        text += (f", as one tile {whole:.3f} s" if whole is not None else
                 f", as one tile: {row['inference_whole_frame_error']}")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps (default: %(default)s)")
    parser.add_argument("--models", default="unet,cameranet,crispnet,deepisp",
                        help="comma-separated registered models with a training recipe (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps per measurement (default: %(default)s)")
    parser.add_argument("--budget", default="short", help="the recipe budget whose batch size and patch are used "
                                                          "(default: %(default)s)")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                        help="training and inference precision, as `isp-bench run --precision`; the roof is a "
                        "matmul in the same precision (default: %(default)s: bf16 on recent GPUs, fp32 on the CPU)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--inference-only", action="store_true", help="measure inference only (a minute on a GPU)")
    args = parser.parse_args()

    import torch

    from _common import provenance, save
    from isp_bench.devices import resolve_device, resolve_precision
    from isp_bench.runs import resolve_dataset

    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    if args.threads:
        torch.set_num_threads(args.threads)
    roof = matmul_roof(device, precision)
    print(f"{device}: {precision} matmul roof {roof:.1f} GFLOP/s ({torch.get_num_threads()} threads)")
    # the embedded set where `isp-bench run` keeps it (work/synth of the repository, generated when absent), so
    # that a run after the benchmark finds it and its preprocessing cache
    os.chdir(Path(__file__).resolve().parents[1])
    manifest, root = resolve_dataset("synth", progress=False)
    kind = "inference" if args.inference_only else "train"
    payload = {"benchmark": kind, "device": device, "precision": precision,
               **({} if args.inference_only else {"budget": args.budget}),
               "threads": torch.get_num_threads(), "matmul_roof_gflop_per_s": roof, "models": [],
               "provenance": provenance(("isp-bench", "torch", "numpy"), device=device, argv=sys.argv[1:])}
    rows = payload["models"]
    context = multiprocessing.get_context("spawn")
    for name in args.models.split(","):
        try:
            with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
                row = pool.submit(measure_model, name, args.budget, device, precision, args.steps, args.threads,
                                  str(manifest.path), str(root), not args.inference_only).result()
        except Exception as error:  # one model's failure is reported; the others are still measured
            rows.append({"model": name, "error": f"{type(error).__name__}: {error}"})
            print(f"{name:10s} failed: {rows[-1]['error']}", flush=True)
        else:
            rows.append(row)
            print(describe(row, roof, args.budget), flush=True)
        # written after every model: a run cut off by a deadline keeps the models it measured
        path = save(f"{kind}-{device.replace(':', '')}", payload)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
