"""Mutation fuzzing of read_raw on every container in ../shared/raw-samples (valid/ and broken/).

Byte flips, header flips, truncations, duplicated and zeroed chunks (seeded: see
:mod:`isp_bench.raw.fuzz`), each file read in a worker process with a memory limit and a per-file
timeout; a worker that crashes or hangs is replaced. Every file must give a RawCapture or an
IspBenchError: escapes (other exceptions), crashes and hangs are listed with the index that
rebuilds the file (``isp_bench.raw.fuzz.mutated_file``). Exit status 1 if there is any.

    PYTHONPATH=$PWD python benchmarks/fuzz_raw.py --files 5000 --seed 0 --workers 2
    (shared folder: --samples, else $ISP_BENCH_SHARED/raw-samples, else ../shared/raw-samples)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from _common import provenance, save

from isp_bench.raw.fuzz import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_S, fuzz_read_raw, sample_sources

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=5000, help="mutated files to read (default 5000)")
    ap.add_argument("--seed", type=int, default=0, help="seed of every mutation (default 0)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                    help=f"seconds per file before it counts as a hang (default {DEFAULT_TIMEOUT_S:g})")
    ap.add_argument("--memory-mb", type=int, default=DEFAULT_MEMORY_MB,
                    help=f"address-space limit per worker in MiB (default {DEFAULT_MEMORY_MB})")
    ap.add_argument("--samples", type=Path, default=None,
                    help="raw-samples folder (default $ISP_BENCH_SHARED/raw-samples or ../shared/raw-samples)")
    args = ap.parse_args()
    samples = args.samples or Path(os.environ.get("ISP_BENCH_SHARED", REPO.parent / "shared")) / "raw-samples"
    sources = sample_sources(samples)
    if not sources:
        sys.exit(f"{samples}: no raw files found; pass --samples or set ISP_BENCH_SHARED")

    def progress(done: int) -> None:
        if done % 500 == 0 or done == args.files:
            print(f"  {done}/{args.files} files", flush=True)

    report = fuzz_read_raw(sources, args.files, seed=args.seed, workers=args.workers, timeout_s=args.timeout,
                           memory_mb=args.memory_mb, progress=progress)
    summary = report.summary()
    print(f"{summary['files']} files from {len(sources)} containers in {summary['seconds']} s "
          f"({summary['files_per_s']} files/s, {summary['workers']} workers): {summary['ok']} read, "
          f"{summary['refused']} refused with an IspBenchError, {summary['escapes']} escapes, "
          f"{summary['crashes']} crashes, {summary['hangs']} hangs")
    print("refused by error: " + ", ".join(f"{k} {v}" for k, v in summary["refused_by_error"].items()))
    for failure in report.failures:
        print(f"  {failure.status}: #{failure.index} {failure.mutation} of {failure.source}: {failure.error}\n"
              f"    {failure.message.strip().splitlines()[-1] if failure.message.strip() else ''}")
    path = save("fuzz_raw", {**report.to_dict(), "sources": [s.name for s in sources],
                             "environment": provenance()})
    print(f"wrote {path}")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
