"""Ingest throughput on the synthetic set, beside the time rawpy alone needs to decode the raws.

Rerun:  python benchmarks/ingest.py [--scenes 24] [--height 384 --width 512] [--repeats 3]
        python benchmarks/ingest.py --scenes 8 --height 2048 --width 2736   (larger, ~5.6 MP frames)
        python benchmarks/ingest.py --scheduler dask --scenes 8 --height 2048 --width 2736
        python benchmarks/ingest.py --memory 200,20000 [--scheduler dask]

Prints files/s and MB/s of `isp-bench ingest synth` with 1 and 2 worker processes (cold: no
cache), of a re-run on the unchanged tree (everything reused from the cache), and of a plain
serial rawpy decode of the same raw files, so the overhead of ingest over decoding is visible.
With ``--scheduler dask`` the same ingests also run on a 1- and a 2-worker Dask LocalCluster
(started before timing, as a long-lived cluster would be) and the Dask overhead against the local
backend is printed. Writes benchmarks/results/ingest[_HxW][_dask].json.

``--memory N1,N2,...`` instead measures the peak memory (ru_maxrss) of the ingesting process for
N tiny DNGs (32×48, ``pairs`` source, no targets), each ingest in a fresh process with 2 workers,
and writes benchmarks/results/ingest_memory[_dask].json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import rawpy

from _common import add_synth_options, best_time, provenance, save
from isp_bench.ingest import ingest
from isp_bench.manifest import read_manifest
from isp_bench.synth import SynthConfig, generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_synth_options(parser)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scheduler", choices=("local", "dask"), default="local",
                        help="dask: also time a Dask LocalCluster and print its overhead (default: local only)")
    parser.add_argument("--memory", default=None, metavar="N1,N2",
                        help="measure peak memory of ingesting N tiny files instead (default: off)")
    args = parser.parse_args()
    if args.memory:
        return memory(args)

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
        backends = ["local"] + (["dask"] if args.scheduler == "dask" else [])
        for backend in backends:
            for workers in (1, 2):
                key = f"ingest_{workers}_workers" + ("_dask" if backend == "dask" else "")
                with _backend(backend, workers) as scheduler:
                    runs = iter(range(args.repeats))

                    def cold():
                        out = tmp / f"{key}_{next(runs)}" / "synth.parquet"
                        ingest("synth", root, out, workers=workers, scheduler=scheduler, progress=False)

                    t = best_time(cold, args.repeats)
                results[key] = {"seconds": t, "files_per_s": len(files) / t, "mb_per_s": total_mb / t}
        if args.scheduler == "dask":
            results["dask_overhead"] = {f"{w}_workers": results[f"ingest_{w}_workers_dask"]["seconds"]
                                        / results[f"ingest_{w}_workers"]["seconds"] - 1 for w in (1, 2)}
        results["load_average"] = os.getloadavg()
        warm_out = tmp / "m1_0" / "synth.parquet"
        t = best_time(lambda: ingest("synth", root, warm_out, workers=1, progress=False), args.repeats)
        results["ingest_rerun_cached"] = {"seconds": t, "files_per_s": len(files) / t}
        results["manifest_rows"] = len(read_manifest(warm_out))

    decode = results["rawpy_decode_only"]["seconds"]
    print(f"synthetic set: {results['files']} files ({results['raw_files']} DNG), {results['megabytes']:.1f} MB")
    print(f"{'what':<28}{'seconds':>9}{'files/s':>10}{'MB/s':>8}{'× decode':>10}")
    print(f"{'rawpy decode only (DNGs)':<28}{decode:>9.2f}{results['rawpy_decode_only']['raw_files_per_s']:>10.1f}"
          f"{results['rawpy_decode_only']['raw_mb_per_s']:>8.1f}{1:>10.2f}")
    keys = [k for k in results if k.startswith("ingest_") and k != "ingest_rerun_cached"] + ["ingest_rerun_cached"]
    for key in keys:
        r = results[key]
        mbs = f"{r['mb_per_s']:>8.1f}" if "mb_per_s" in r else f"{'-':>8}"
        print(f"{key:<28}{r['seconds']:>9.2f}{r['files_per_s']:>10.1f}{mbs}{r['seconds'] / decode:>10.2f}")
    for workers, overhead in results.get("dask_overhead", {}).items():
        print(f"dask overhead against the local backend, {workers.replace('_', ' ')}: {overhead:+.1%}")
    print("load average (1, 5, 15 min): " + ", ".join(f"{v:.2f}" for v in results["load_average"]))
    name = "ingest" if (args.height, args.width) == (384, 512) else f"ingest_{args.height}x{args.width}"
    name += "_dask" if args.scheduler == "dask" else ""
    path = save(name, {"benchmark": "ingest", "config": vars(args), "results": results,
                           "provenance": provenance()})
    print(f"wrote {path}")


class _backend:
    """``--scheduler`` value for an ingest on ``backend`` with ``workers``: ``local``, or the address
    of a Dask LocalCluster of that many single-threaded worker processes, started here (untimed)."""

    def __init__(self, backend: str, workers: int):
        self.backend, self.workers, self.cluster = backend, workers, None

    def __enter__(self) -> str:
        if self.backend == "local":
            return "local"
        from distributed import LocalCluster

        self.cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                    dashboard_address=None)
        return self.cluster.scheduler_address

    def __exit__(self, *exc) -> None:
        if self.cluster is not None:
            self.cluster.close()


_MEASURE = """
import json, resource, sys
from isp_bench.ingest import ingest
result = ingest("pairs", sys.argv[1], sys.argv[2], workers=2, scheduler=sys.argv[3], progress=False)
assert not result.errors and len(result.manifest) == int(sys.argv[4]), result.errors[:3]
print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "seconds": result.seconds}))
"""


def _tiny_tree(root: Path, n: int) -> None:
    """``n`` copies of one 32×48 DNG in folders of 1 000 (the pairs source: raws without targets)."""
    from isp_bench.raw import write_dng

    rng = np.random.default_rng(0)
    template = root / "template.dng"
    write_dng(template, rng.integers(64, 1023, (32, 48), dtype=np.uint16), cfa="RGGB", black_level=64,
              white_level=1023, wb_as_shot=(2.0, 1.0, 1.5), color_matrix=np.eye(3), iso=100, exposure_s=0.01,
              fnumber=2.0, make="isp-bench", model="tiny")
    data = template.read_bytes()
    template.unlink()
    for i in range(n):
        folder = root / f"{i // 1000:03d}"
        folder.mkdir(exist_ok=True)
        (folder / f"{i:05d}.dng").write_bytes(data)


def memory(args) -> None:
    counts = [int(n) for n in args.memory.split(",")]
    results = {}
    for n in counts:
        with tempfile.TemporaryDirectory() as tmp, _backend(args.scheduler, 2) as scheduler:
            root = Path(tmp) / "data"
            root.mkdir()
            _tiny_tree(root, n)
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
            out = subprocess.run([sys.executable, "-c", _MEASURE, str(root), str(Path(tmp) / "m.parquet"),
                                  scheduler, str(n)], capture_output=True, text=True, env=env, check=True)
            results[n] = {**json.loads(out.stdout.strip().splitlines()[-1]), "load_average": os.getloadavg()}
        r = results[n]
        print(f"{n:>7} tiny files ({args.scheduler}, 2 workers): peak RSS of the ingesting process "
              f"{r['peak_rss_mb']:.0f} MB, {r['seconds']:.1f} s ({n / r['seconds']:.0f} files/s); load "
              + ", ".join(f"{v:.2f}" for v in r["load_average"]))
    name = "ingest_memory" + ("_dask" if args.scheduler == "dask" else "")
    path = save(name, {"benchmark": "ingest memory", "config": vars(args), "results": results,
                       "provenance": provenance()})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
