"""``isp-bench qa``: pair quality checks over a manifest (see :mod:`isp_bench.qa.run`).

``isp_bench.cli`` (COMMAND_MODULES) calls :func:`add_commands` with its subparsers object.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from isp_bench.parallel import add_scheduler_option, process_count
from isp_bench.qa.thresholds import Thresholds


def add_commands(subparsers) -> None:
    """Add the ``qa`` subcommand to an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "qa", help="check raw/target pairs (registration, motion, exposure ratio, clipping, blur) and flag bad ones",
        description="Register each pair's raw (classic rendering) to its target, measure residual motion, the "
                    "exposure ratio against the intended one, clipped pixels and blur, and write the manifest back "
                    "with the flags misaligned / unverified / motion / clipped / blurred / exposure_mismatch and a "
                    "JSON extra['qa'] entry per pair (atomically). Monitor captures are also warped onto their source "
                    "image through the fiducial homography.")
    p.add_argument("manifest", type=Path, help="manifest to check (e.g. from `isp-bench capture session-ingest`)")
    p.add_argument("--root", type=Path, required=True, help="folder the manifest's paths are relative to")
    p.add_argument("--out", type=Path, default=None, help="write the checked manifest here (default: replace MANIFEST)")
    p.add_argument("--report", type=Path, default=None,
                   help="folder for the per-session markdown report with the worst pairs as images "
                        "(default: <manifest stem>_qa/ beside the output manifest)")
    p.add_argument("--worst", type=int, default=6, help="pairs shown as images per session (default: %(default)s)")
    for limit in fields(Thresholds):
        p.add_argument("--" + limit.name.replace("_", "-"), type=float, default=limit.default,
                       help=limit.metadata["help"] + " (default: %(default)s)")
    p.add_argument("--workers", type=process_count, default=None,
                   help="processes checking pairs (default: local: 1 = in-process; dask: all CPUs)")
    add_scheduler_option(p, "the pair checks")
    p.add_argument("--quiet", action="store_true", help="no progress bar (default: show it)")
    p.set_defaults(func=run_qa)


def run_qa(args: argparse.Namespace) -> int:
    from isp_bench.qa.run import QA_FLAGS, qa_manifest

    from isp_bench.errors import IspBenchError

    if args.worst < 0:
        raise IspBenchError(f"--worst {args.worst}: give 0 (no images) or more")
    out = args.out or args.manifest
    report = args.report or out.parent / f"{out.stem}_qa"
    th = Thresholds(**{limit.name: getattr(args, limit.name) for limit in fields(Thresholds)})
    result = qa_manifest(args.manifest, args.root, out, report=report, thresholds=th, worst=args.worst,
                         progress=not args.quiet, workers=args.workers, scheduler=args.scheduler)
    print(f"checked {len(result.rows)} pairs in {result.seconds:.1f} s; wrote {out}")
    for flag in QA_FLAGS:
        ids = result.flagged[flag]
        print(f"  {flag:18s} {len(ids):5d}" + (f"  e.g. {', '.join(ids[:3])}" if ids else ""))
    print(f"report: {result.report}")
    return 0
