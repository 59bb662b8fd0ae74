"""Training-patch throughput from the memory-mapped preprocessing cache: one process, DataLoader
workers, the bare memory-mapped slice rate (the roof), and decoding the files per sample.

Rerun:  python benchmarks/dataloader.py [--patch 256] [--samples 2000] [--batch 8] [--repeats 5]
        python benchmarks/dataloader.py --scenes 8 --height 2048 --width 2736   (5.6 MP frames)

Every figure is the best of ``--repeats`` runs (the least disturbed one), with the 1-minute load
average around it: on a shared machine, rerun on a quiet one.

- ``one_process``: :class:`isp_bench.data.BatchLoader` without workers, torch on one thread: CFA-exact
  augmented patches (packed raw + sRGB target + linear target, random flip/rotation) per second of one
  core (wall time; ``one_process_cpu`` per CPU-second of the process).
- ``workers_2``: the same loader with 2 worker processes writing into shared slots (wall time of the
  whole run, worker start included), its ratio to one process, and ``workers_2_steady`` (after the
  first batch: what a long training stage sees; ``workers_2_start_s`` is the first batch's wait).
  The consuming process also needs CPU to receive batches, so on a 2-core machine three processes
  share two cores; ``cpu_us_per_patch`` splits the CPU time per patch between the workers and the
  consumer, against one process's: the workers' extra cost is what the cores' shared memory
  bandwidth and the switching between three processes take.
- ``one_process_ring``: one process writing its batches in turn into the ring of shared-memory slots that 2
  workers write into (:func:`isp_bench.data.dataset.ring_slots`), nothing sent anywhere: what the ring alone
  costs against the one process's own two alternating buffers, which stay in the core's caches.
- ``threads_2``: the same loader with 2 threads of this process (``BatchLoader(threads=True)``): no
  transport and no third process; numpy releases the GIL while it cuts and converts a patch.
- ``independent_2``: two processes each running the one-process loader, started together at a barrier and
  timed until the later one ends, nothing passed between them: how far this machine's cores scale the
  cutting itself (the roof for any two workers).
- ``mmap_slice_roof``: copying the same-size raw and target slices out of the memory-mapped arrays,
  nothing else (no augmentation, no conversion, no batch): what any loader over this cache is bound by.
- ``decode``: the full preprocessing (rawpy decode, normalise, pack, JPEG and PNG decode, alignment)
  for every sample, as a loader without a cache must (the cache's speedup; target ≥ 20×).

Writes benchmarks/results/dataloader.json (or dataloader_<H>x<W>.json) with provenance.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _common import add_synth_options, provenance, save
from isp_bench.data import DIHEDRAL, BatchLoader, PairDataset, patch_views, preprocess_row
from isp_bench.data.dataset import SharedSlots, SlotRequest, ring_slots
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


def _independent_rate(load, count: int, repeats: int) -> float:
    """Patches/s of two processes (forked) each running ``load`` (``count`` patches) at the same moment: both
    start at a barrier and the time runs until the later one ends; the best of ``repeats``."""
    context = multiprocessing.get_context("fork")
    best = 0.0
    for _ in range(repeats):
        barrier = context.Barrier(3)

        def child() -> None:
            barrier.wait()
            load()

        processes = [context.Process(target=child) for _ in range(2)]
        for process in processes:
            process.start()
        barrier.wait(timeout=60)
        start = time.perf_counter()
        for process in processes:
            process.join(timeout=600)
        for process in processes:
            if process.is_alive():
                process.terminate()
                process.join()
        if any(process.exitcode != 0 for process in processes):
            raise RuntimeError(f"an independent loader process failed (exit codes {[p.exitcode for p in processes]})")
        best = max(best, 2 * count / (time.perf_counter() - start))
    return best


def _workers_run(dataset, items, batch: int, workers: int) -> dict[str, float]:
    """One pass with ``workers``: its rate, the wait for the first batch, the rate after it, and CPU µs per
    patch of the workers (reaped child processes) and of this consuming process."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu, start = time.process_time(), time.perf_counter()
    batches = iter(BatchLoader(dataset, items, batch, workers=workers))
    first = len(next(batches)["pair_id"])
    after_first = time.perf_counter()
    rest = sum(len(b["pair_id"]) for b in batches)
    end = time.perf_counter()
    del batches  # joins and reaps the workers, so that their CPU time is counted
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    worker_cpu = (reaped.ru_utime + reaped.ru_stime) - (children.ru_utime + children.ru_stime)
    count = first + rest
    return {"patches_per_s": count / (end - start), "load_average_1min": os.getloadavg()[0],
            "start_s": after_first - start, "steady_patches_per_s": rest / (end - after_first),
            "workers_cpu_us_per_patch": 1e6 * worker_cpu / count,
            "consumer_cpu_us_per_patch": 1e6 * (time.process_time() - cpu) / count}


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

        def load(workers: int, threads: bool = False):
            return lambda: [None for _ in BatchLoader(dataset, items, args.batch, workers=workers, threads=threads)]

        load(0)()  # map the cache pages once
        one, one_cpu, loads_one = _best_rate(args.samples, load(0), args.repeats)
        slots = ring_slots(2, 2)
        ring = SharedSlots(dataset.batch(items[: args.batch]), slots)

        def into_ring():  # the workers' own write path (SharedSlots.fill), in this process
            for k, start in enumerate(range(0, args.samples, args.batch)):
                ring.fill(SlotRequest(tuple(items[start : start + args.batch]), k % slots), dataset.batch)

        one_ring, _, _ = _best_rate(args.samples, into_ring, args.repeats)
        runs = [_workers_run(dataset, items, args.batch, 2) for _ in range(args.repeats)]
        two = max(run["patches_per_s"] for run in runs)
        steady = max(runs, key=lambda run: run["steady_patches_per_s"])
        loads_two = [run["load_average_1min"] for run in runs]
        threads, _, loads_threads = _best_rate(args.samples, load(2, threads=True), args.repeats)
        independent = _independent_rate(load(0), args.samples, args.repeats)

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
                patch_views(arrays["raw"], targets, top, left, patch, DIHEDRAL[int(rng.integers(4))]).copies()

        decode_rate, _, _ = _best_rate(n_decode, decode, min(args.repeats, 2))

    results = {
        "patch": patch, "frame": [args.height, args.width], "train_pairs": len(rows), "batch": args.batch,
        "cache_build_s": build_s,
        "one_process_patches_per_s": one,
        "one_process_cpu_patches_per_cpu_s": one_cpu,
        "one_process_ring_patches_per_s": one_ring,
        "one_process_ring_ratio": one_ring / one,
        "workers_2_patches_per_s": two,
        "workers_2_ratio": two / one,
        "workers_2_steady_patches_per_s": steady["steady_patches_per_s"],
        "workers_2_steady_ratio": steady["steady_patches_per_s"] / one,
        "workers_2_start_s": steady["start_s"],
        "threads_2_patches_per_s": threads,
        "threads_2_ratio": threads / one,
        "independent_2_patches_per_s": independent,
        "independent_2_ratio": independent / one,
        "cpu_us_per_patch": {"one_process": 1e6 / one_cpu, "workers_2": steady["workers_cpu_us_per_patch"],
                             "workers_2_consumer": steady["consumer_cpu_us_per_patch"]},
        "mmap_slice_roof_patches_per_s": roof,
        "decode_patches_per_s": decode_rate,
        "cache_speedup_over_decode": one / decode_rate,
        "load_average_1min": {"one_process": loads_one, "workers_2": loads_two, "threads_2": loads_threads,
                              "mmap_slice_roof": loads_roof},
        "cpu_count": os.cpu_count(),
    }
    print(f"{len(rows)} training pairs, {args.height}×{args.width} frames, {args.patch}² patches, "
          f"batch {args.batch}, cache built in {build_s:.1f} s; best of {args.repeats}")
    print(f"one process (1 core):       {one:8.1f} patches/s   ({one_cpu:.1f} per CPU-second; target ≥ 1000)  "
          f"load {min(loads_one):.1f}–{max(loads_one):.1f}")
    print(f"one process into the ring:  {one_ring:8.1f} patches/s   ({one_ring / one:.2f}×: the {slots} "
          "shared slots 2 workers write into, in turn)")
    print(f"DataLoader, 2 workers:      {two:8.1f} patches/s   ({two / one:.2f}× one process; target ≥ 1.8×)  "
          f"load {min(loads_two):.1f}–{max(loads_two):.1f}")
    print(f"  after the first batch:    {steady['steady_patches_per_s']:8.1f} patches/s   "
          f"({steady['steady_patches_per_s'] / one:.2f}×; first batch after {steady['start_s']:.2f} s)")
    print(f"  CPU µs per patch:          workers {steady['workers_cpu_us_per_patch']:.0f} + consumer "
          f"{steady['consumer_cpu_us_per_patch']:.0f} (one process: {1e6 / one_cpu:.0f})")
    print(f"2 loader threads:           {threads:8.1f} patches/s   ({threads / one:.2f}× one process; target ≥ 1.8×)  "
          f"load {min(loads_threads):.1f}–{max(loads_threads):.1f}")
    print(f"2 independent processes:    {independent:8.1f} patches/s   ({independent / one:.2f}×: "
          "what this machine's cores allow any two workers)")
    print(f"memory-mapped slices (roof):{roof:8.1f} patches/s")
    print(f"decode every sample:        {decode_rate:8.1f} patches/s   "
          f"(cache {one / decode_rate:.1f}× faster; target ≥ 20×)")
    name = "dataloader" if (args.height, args.width) == (384, 512) else f"dataloader_{args.height}x{args.width}"
    path = save(name, {"benchmark": "dataloader", "config": vars(args), "results": results,
                       "provenance": provenance(("isp-bench", "numpy", "torch", "rawpy"))})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
