"""Training-patch throughput from the memory-mapped preprocessing cache: one process, DataLoader
workers, the bare memory-mapped slice rate (the roof), and decoding the files per sample.

Rerun:  python benchmarks/dataloader.py [--patch 256] [--samples 2000] [--batch 8] [--repeats 5]
        python benchmarks/dataloader.py --scenes 8 --height 2048 --width 2736   (5.6 MP frames)

Every figure is the best of ``--repeats`` runs (the least disturbed one), with the 1-minute load
average around it: on a shared machine, rerun on a quiet one.

- ``one_process``: :func:`isp_bench.data.batch_loader` without workers, torch on one thread: CFA-exact
  augmented patches (packed raw + sRGB target + linear target, random flip/rotation) per second of one
  core (wall time; ``one_process_cpu`` per CPU-second of the process).
- ``workers_2``: the same loader with 2 worker processes (wall time), and its ratio to one process.
  The trainer's main process also needs CPU to receive batches, so the ratio needs 3 idle cores to
  show the workers' scaling. Workers write every batch into fresh shared memory (torch's transport
  between processes) while one process recycles its batch arrays, so the workers' figure includes
  the page faults of that memory (1.8 MB per 256² sample), which on a virtual machine can cost more
  than cutting the patches.
- ``mmap_slice_roof``: copying the same-size raw and target slices out of the memory-mapped arrays,
  nothing else (no augmentation, no conversion, no batch): what any loader over this cache is bound by.
- ``decode``: the full preprocessing (rawpy decode, normalise, pack, JPEG and PNG decode, alignment)
  for every sample, as a loader without a cache must (the cache's speedup; target ≥ 20×).

Writes benchmarks/results/dataloader.json (or dataloader_<H>x<W>.json) with provenance.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _common import add_synth_options, provenance, save
from isp_bench.data import DIHEDRAL, PairDataset, batch_loader, crop_packed_patch, preprocess_row
from isp_bench.ingest import ingest
from isp_bench.synth import SynthConfig, generate


def _best_rate(count: int, run, repeats: int) -> tuple[float, float, list[float]]:
    """(best wall rate, best CPU-time rate of this process, load averages) over ``repeats`` runs."""
    walls, cpus, loads = [], [], []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        run()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
        loads.append(os.getloadavg()[0])
    return count / min(walls), count / min(cpus), loads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patch", type=int, default=256)
    parser.add_argument("--samples", type=int, default=2000, help="patches per measured run")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    add_synth_options(parser)
    args = parser.parse_args()
    patch = (args.patch, args.patch)
    torch.set_num_threads(1)  # one core for the one-process figure (workers run one thread each anyway)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = generate(tmp / "synth", SynthConfig(scenes=args.scenes, height=args.height, width=args.width),
                        progress=False)
        manifest = ingest("synth", root, tmp / "synth.parquet", progress=False).manifest
        start = time.perf_counter()
        dataset = PairDataset(manifest, root, "train", cache_dir=tmp / "cache", patch=patch, augment=True,
                              samples_per_epoch=args.samples, progress=False)
        build_s = time.perf_counter() - start
        items = range(args.samples)

        def load(workers: int):
            return lambda: [None for _ in batch_loader(dataset, items, args.batch, workers=workers)]

        load(0)()  # map the cache pages once
        one, one_cpu, loads_one = _best_rate(args.samples, load(0), args.repeats)
        two, _, loads_two = _best_rate(args.samples, load(2), args.repeats)

        entries = [dataset.cache.load(row) for row in dataset.rows]
        rng = np.random.default_rng(0)
        half = args.patch // 2 + 1

        def slices():
            for i in items:
                entry = entries[i % len(entries)]
                y, x = (int(rng.integers(0, n - half + 1)) for n in entry.raw.shape[1:])
                np.array(entry.raw[:, y : y + half, x : x + half])
                for target in (entry.target, entry.linear_target):
                    np.array(target[:, 2 * y : 2 * y + 2 * half, 2 * x : 2 * x + 2 * half])

        roof, _, loads_roof = _best_rate(args.samples, slices, args.repeats)

        rows = dataset.rows
        n_decode = max(10, args.samples // 100)

        def decode():
            for i in range(n_decode):
                arrays = preprocess_row(root, rows[i % len(rows)])
                targets = [arrays[k] for k in ("target", "linear_target") if k in arrays]
                h, w = 2 * arrays["raw"].shape[1], 2 * arrays["raw"].shape[2]
                top = 2 * int(rng.integers(0, (h - args.patch - 2) // 2 + 1))
                left = 2 * int(rng.integers(0, (w - args.patch - 2) // 2 + 1))
                crop_packed_patch(arrays["raw"], targets, top, left, patch, DIHEDRAL[int(rng.integers(4))])

        decode_rate, _, _ = _best_rate(n_decode, decode, min(args.repeats, 2))

    results = {
        "patch": patch, "frame": [args.height, args.width], "train_pairs": len(rows), "batch": args.batch,
        "cache_build_s": build_s,
        "one_process_patches_per_s": one,
        "one_process_cpu_patches_per_cpu_s": one_cpu,
        "workers_2_patches_per_s": two,
        "workers_2_ratio": two / one,
        "mmap_slice_roof_patches_per_s": roof,
        "decode_patches_per_s": decode_rate,
        "cache_speedup_over_decode": one / decode_rate,
        "load_average_1min": {"one_process": loads_one, "workers_2": loads_two, "mmap_slice_roof": loads_roof},
        "cpu_count": os.cpu_count(),
    }
    print(f"{len(rows)} training pairs, {args.height}×{args.width} frames, {args.patch}² patches, "
          f"batch {args.batch}, cache built in {build_s:.1f} s; best of {args.repeats}")
    print(f"one process (1 core):       {one:8.1f} patches/s   ({one_cpu:.1f} per CPU-second; target ≥ 1000)  "
          f"load {min(loads_one):.1f}–{max(loads_one):.1f}")
    print(f"DataLoader, 2 workers:      {two:8.1f} patches/s   ({two / one:.2f}× one process; target ≥ 1.8×)  "
          f"load {min(loads_two):.1f}–{max(loads_two):.1f}")
    print(f"memory-mapped slices (roof):{roof:8.1f} patches/s")
    print(f"decode every sample:        {decode_rate:8.1f} patches/s   "
          f"(cache {one / decode_rate:.1f}× faster; target ≥ 20×)")
    name = "dataloader" if (args.height, args.width) == (384, 512) else f"dataloader_{args.height}x{args.width}"
    path = save(name, {"benchmark": "dataloader", "config": vars(args), "results": results,
                       "provenance": provenance(("isp-bench", "numpy", "torch", "rawpy"))})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
