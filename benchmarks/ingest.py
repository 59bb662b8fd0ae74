"""Ingest throughput on the synthetic set, beside the time rawpy alone needs to decode the raws.

Rerun:  python benchmarks/ingest.py [--scenes 24] [--height 384 --width 512] [--repeats 3]
        python benchmarks/ingest.py --scenes 8 --height 2048 --width 2736   (larger, ~5.6 MP frames)

Prints files/s and MB/s of `isp-bench ingest synth` with 1 and 2 worker processes (cold: no
cache), of a re-run on the unchanged tree (everything reused from the cache), and of a plain
serial rawpy decode of the same raw files, so the overhead of ingest over decoding is visible.
Writes benchmarks/results/ingest.json.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import rawpy

from _common import add_synth_options, best_time, provenance, save
from isp_bench.ingest import ingest
from isp_bench.manifest import read_manifest
from isp_bench.synth import SynthConfig, generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_synth_options(parser)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = generate(tmp / "synth", SynthConfig(scenes=args.scenes, height=args.height, width=args.width), progress=False)
        files = [p for p in sorted(root.rglob("*")) if p.suffix in (".dng", ".jpg", ".png")]
        raws = [p for p in files if p.suffix == ".dng"]
        total_mb = sum(p.stat().st_size for p in files) / 1e6
        raw_mb = sum(p.stat().st_size for p in raws) / 1e6

        def decode_only():
            for path in raws:
                with rawpy.imread(str(path)) as raw:
                    raw.raw_image_visible.copy()

        results = {"files": len(files), "raw_files": len(raws), "megabytes": round(total_mb, 2),
                   "raw_megabytes": round(raw_mb, 2)}
        t = best_time(decode_only, args.repeats)
        results["rawpy_decode_only"] = {"seconds": t, "raw_files_per_s": len(raws) / t, "raw_mb_per_s": raw_mb / t}
        for workers in (1, 2):
            runs = iter(range(args.repeats))

            def cold():
                out = tmp / f"m{workers}_{next(runs)}" / "synth.parquet"
                ingest("synth", root, out, workers=workers, progress=False)

            t = best_time(cold, args.repeats)
            results[f"ingest_{workers}_workers"] = {"seconds": t, "files_per_s": len(files) / t,
                                                    "mb_per_s": total_mb / t}
        warm_out = tmp / "m1_0" / "synth.parquet"
        t = best_time(lambda: ingest("synth", root, warm_out, workers=1, progress=False), args.repeats)
        results["ingest_rerun_cached"] = {"seconds": t, "files_per_s": len(files) / t}
        results["manifest_rows"] = len(read_manifest(warm_out))

    decode = results["rawpy_decode_only"]["seconds"]
    print(f"synthetic set: {results['files']} files ({results['raw_files']} DNG), {results['megabytes']:.1f} MB")
    print(f"{'what':<28}{'seconds':>9}{'files/s':>10}{'MB/s':>8}{'× decode':>10}")
    print(f"{'rawpy decode only (DNGs)':<28}{decode:>9.2f}{results['rawpy_decode_only']['raw_files_per_s']:>10.1f}"
          f"{results['rawpy_decode_only']['raw_mb_per_s']:>8.1f}{1:>10.2f}")
    for key in ("ingest_1_workers", "ingest_2_workers", "ingest_rerun_cached"):
        r = results[key]
        mbs = f"{r['mb_per_s']:>8.1f}" if "mb_per_s" in r else f"{'-':>8}"
        print(f"{key:<28}{r['seconds']:>9.2f}{r['files_per_s']:>10.1f}{mbs}{r['seconds'] / decode:>10.2f}")
    name = "ingest" if (args.height, args.width) == (384, 512) else f"ingest_{args.height}x{args.width}"
    path = save(name, {"benchmark": "ingest", "config": vars(args), "results": results,
                           "provenance": provenance()})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
