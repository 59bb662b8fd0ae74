"""Training-patch throughput: the memory-mapped preprocessing cache vs decoding the files per sample.

Rerun:  python benchmarks/dataloader.py [--patch 256] [--samples 200] [--height 384 --width 512]
        python benchmarks/dataloader.py --scenes 8 --height 2048 --width 2736   (5.6 MP frames)

Both paths produce the same samples (packed raw + sRGB target + linear target, random CFA-exact
flip/rotation): "cache" reads them from isp_bench.data's memory-mapped cache (PairDataset); "decode"
runs the full preprocessing (rawpy decode, normalise, pack, JPEG and PNG decode, alignment) for
every sample, as a loader without a cache must. Also reports a torch DataLoader with 2 workers over
the cache. Writes benchmarks/results/dataloader.json (the target is at least 20× for the cache).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader

from _common import add_synth_options, provenance, save
from isp_bench.data import DIHEDRAL, PairDataset, crop_packed_patch, preprocess_row
from isp_bench.ingest import ingest
from isp_bench.synth import SynthConfig, generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patch", type=int, default=256)
    parser.add_argument("--samples", type=int, default=200)
    add_synth_options(parser)
    args = parser.parse_args()
    patch = (args.patch, args.patch)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = generate(tmp / "synth", SynthConfig(scenes=args.scenes, height=args.height, width=args.width),
                        progress=False)
        manifest = ingest("synth", root, tmp / "synth.parquet", progress=False).manifest
        start = time.perf_counter()
        dataset = PairDataset(manifest, root, "train", cache_dir=tmp / "cache", patch=patch, augment=True,
                              samples_per_epoch=args.samples, progress=False)
        build_s = time.perf_counter() - start

        start = time.perf_counter()
        for i in range(args.samples):
            dataset[i]
        cache_s = time.perf_counter() - start

        rows = dataset.rows
        n_decode = max(10, args.samples // 10)
        rng = np.random.default_rng(0)
        start = time.perf_counter()
        for i in range(n_decode):
            arrays = preprocess_row(root, rows[i % len(rows)])
            targets = [arrays[k] for k in ("target", "linear_target") if k in arrays]
            h, w = 2 * arrays["raw"].shape[1], 2 * arrays["raw"].shape[2]
            top = 2 * int(rng.integers(0, (h - args.patch - 2) // 2 + 1))
            left = 2 * int(rng.integers(0, (w - args.patch - 2) // 2 + 1))
            crop_packed_patch(arrays["raw"], targets, top, left, patch, DIHEDRAL[int(rng.integers(4))])
        decode_s = time.perf_counter() - start

        loader = DataLoader(dataset, batch_size=8, num_workers=2, collate_fn=lambda s: s)
        start = time.perf_counter()
        for _ in loader:
            pass
        loader_s = time.perf_counter() - start

    results = {
        "patch": patch, "frame": [args.height, args.width], "train_pairs": len(rows),
        "cache_build_s": build_s,
        "cache_patches_per_s": args.samples / cache_s,
        "decode_patches_per_s": n_decode / decode_s,
        "speedup": (args.samples / cache_s) / (n_decode / decode_s),
        "dataloader_2_workers_patches_per_s": args.samples / loader_s,
    }
    print(f"{len(rows)} training pairs, {args.height}×{args.width} frames, {args.patch}² patches, "
          f"cache built in {build_s:.1f} s")
    print(f"cache (1 process):          {results['cache_patches_per_s']:8.1f} patches/s")
    print(f"decode every sample:        {results['decode_patches_per_s']:8.1f} patches/s")
    print(f"speedup:                    {results['speedup']:8.1f}×  (target ≥ 20×)")
    print(f"DataLoader, 2 workers:      {results['dataloader_2_workers_patches_per_s']:8.1f} patches/s")
    name = "dataloader" if (args.height, args.width) == (384, 512) else f"dataloader_{args.height}x{args.width}"
    path = save(name, {"benchmark": "dataloader", "config": vars(args), "results": results,
                               "provenance": provenance(("isp-bench", "numpy", "torch", "rawpy"))})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
