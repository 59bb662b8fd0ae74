"""Throughput and peak memory of `isp-bench publish` on the synthetic set.

Rerun:  python benchmarks/publish.py [--scenes 24] [--height 384 --width 512] [--repeats 3]
                                     [--shard-mb 16] [--row-group-mb 8]

Generates and ingests a synthetic dataset (in a child process), then exports it to a Hub-ready
folder with 1 and 2 worker processes, each measurement in a fresh child process so that its peak
memory is its own: MB/s of file payload packed into shards, wall time (the one-time import of
`datasets` is timed apart), and peak memory as tracemalloc's Python-heap peak and Arrow's
memory-pool high-water mark in the exporting process, and ru_maxrss of the exporting process and
of the processes that wrote shards (the workers, or the exporting process itself with 1 worker).
Payload counts a target once per pair: a scene's well-lit and low-light pairs share one target. Also times the I/O floor (read + sha256 of every
file, which publish does anyway) and the re-run of a finished export (verify only, nothing
written). The shard and row-group sizes are deliberately small (16 MB / 8 MB) so the set spans
several shards per split and the memory bound (about workers × row group) is visible on a
set this size; the Hub defaults are 500 MB / 100 MB.
Writes benchmarks/results/publish.json (or publish_<h>x<w>.json for other sizes).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import add_synth_options, provenance, save

HERE = Path(__file__).resolve().parent


def _prepare(tmp: Path, scenes: int, height: int, width: int) -> tuple[Path, Path]:
    root, manifest = tmp / "synth", tmp / "synth.parquet"
    code = ("from isp_bench.synth import SynthConfig, generate; from isp_bench.ingest import ingest; "
            f"r = generate({str(root)!r}, SynthConfig(scenes={scenes}, height={height}, width={width}), progress=False); "
            f"ingest('synth', r, {str(manifest)!r}, progress=False)")
    subprocess.run([sys.executable, "-c", code], check=True)
    return root, manifest


def _child(spec: dict) -> dict:
    """One measurement, run in a fresh process."""
    import tracemalloc

    import pyarrow as pa

    from isp_bench.hub import publish
    from isp_bench.manifest import read_manifest

    start = time.perf_counter()
    import datasets  # noqa: F401  (the features definition needs it; a one-time cost, timed apart)
    import tqdm  # noqa: F401

    import isp_bench.hub.card  # noqa: F401
    from isp_bench.datasets import get_source
    from isp_bench.hub._format import hub_schema

    hub_schema()
    manifest = read_manifest(spec["manifest"])
    get_source(manifest.dataset)
    import_seconds = time.perf_counter() - start
    rss_before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {}
    if spec["what"] == "read_hash":
        rows = manifest.rows()
        start = time.perf_counter()
        total = 0
        for row in rows:
            for col in ("input_path", "target_path", "linear_target_path"):
                if row[col]:
                    data = (Path(spec["root"]) / row[col]).read_bytes()
                    hashlib.sha256(data).hexdigest()
                    total += len(data)
        out["seconds"] = time.perf_counter() - start
        out["payload_mb"] = total / 1e6
        return out
    if spec["trace"]:
        tracemalloc.start()
    start = time.perf_counter()
    result = publish(manifest, spec["root"], spec["out"], shard_mb=spec["shard_mb"], row_group_mb=spec["row_group_mb"],
                     workers=spec["workers"], progress=False)
    out["seconds"] = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] if spec["trace"] else None
    tracemalloc.stop()
    out.update({
        "import_seconds": import_seconds, "payload_mb": result.payload_bytes / 1e6, "folder_mb": result.folder_bytes / 1e6,
        "shards": len(result.shards), "shards_written": result.shards_written, "shards_reused": result.shards_reused,
        "tracemalloc_peak_mb": peak / 1e6 if peak is not None else None,
        "arrow_pool_peak_mb": pa.default_memory_pool().max_memory() / 1e6,
        "maxrss_before_mb": rss_before_mb,
        "maxrss_self_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "maxrss_shard_writer_mb": result.peak_worker_rss_mb,
    })
    return out


def _run_child(spec: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], check=True, capture_output=True,
                          text=True, cwd=HERE)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_synth_options(parser)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shard-mb", type=float, default=16)
    parser.add_argument("--row-group-mb", type=float, default=8)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(json.loads(args.child))))
        return

    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root, manifest = _prepare(tmp, args.scenes, args.height, args.width)
        files = [p for p in root.rglob("*") if p.suffix in (".dng", ".jpg", ".png")]
        results["files"] = len(files)
        results["dataset_mb"] = sum(p.stat().st_size for p in files) / 1e6
        base = {"manifest": str(manifest), "root": str(root), "shard_mb": args.shard_mb,
                "row_group_mb": args.row_group_mb}

        runs = [_run_child({**base, "what": "read_hash"}) for _ in range(args.repeats)]
        best = min(runs, key=lambda r: r["seconds"])
        results["read_and_hash_only"] = {**best, "mb_per_s": best["payload_mb"] / best["seconds"]}
        for workers in (1, 2):
            # timing runs without tracemalloc (it slows allocation), then one traced run for memory
            runs = [_run_child({**base, "what": "publish", "workers": workers, "trace": False,
                                "out": str(tmp / f"out{workers}_{i}")}) for i in range(args.repeats)]
            traced = _run_child({**base, "what": "publish", "workers": workers, "trace": True,
                                 "out": str(tmp / f"traced{workers}")})
            best = min(runs, key=lambda r: r["seconds"])
            peak = {k: max(r[k] for r in [*runs, traced] if r[k] is not None)
                    for k in runs[0] if "peak" in k or "maxrss" in k}
            results[f"publish_{workers}_workers"] = {**best, **peak, "mb_per_s": best["payload_mb"] / best["seconds"],
                                                     "all_seconds": [r["seconds"] for r in runs],
                                                     "traced_run_seconds": traced["seconds"]}
        rerun = [_run_child({**base, "what": "publish", "workers": 1, "trace": False, "out": str(tmp / "out1_0")})
                 for _ in range(args.repeats)]
        best = min(rerun, key=lambda r: r["seconds"])
        results["rerun_finished_export"] = {"seconds": best["seconds"], "shards_reused": best["shards_reused"],
                                            "shards_written": best["shards_written"]}

    print(f"synthetic set: {results['files']} files, {results['dataset_mb']:.1f} MB; shards of {args.shard_mb} MB, "
          f"row groups of {args.row_group_mb} MB")
    r = results["read_and_hash_only"]
    print(f"{'what':<26}{'seconds':>9}{'MB/s':>8}{'py heap':>9}{'arrow':>8}{'rss self':>10}{'rss writer':>11}  (peaks, MB)")
    print(f"{'read + sha256 only':<26}{r['seconds']:>9.2f}{r['mb_per_s']:>8.1f}")
    for workers in (1, 2):
        r = results[f"publish_{workers}_workers"]
        print(f"{f'publish, {workers} worker(s)':<26}{r['seconds']:>9.2f}{r['mb_per_s']:>8.1f}{r['tracemalloc_peak_mb']:>9.1f}"
              f"{r['arrow_pool_peak_mb']:>8.1f}{r['maxrss_self_mb']:>10.1f}{r['maxrss_shard_writer_mb']:>11.1f}")
    r = results["rerun_finished_export"]
    print(f"{'re-run (verify only)':<26}{r['seconds']:>9.2f}   ({r['shards_reused']} shards verified, "
          f"{r['shards_written']} written)")
    name = "publish" if (args.height, args.width) == (384, 512) else f"publish_{args.height}x{args.width}"
    config = {k: v for k, v in vars(args).items() if k != "child"}
    path = save(name, {"benchmark": "publish", "config": config, "results": results,
                       "provenance": provenance(("isp-bench", "numpy", "rawpy", "pyarrow", "datasets",
                                                 "huggingface-hub"))})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
