"""``isp-bench score``: the command-line face of :func:`isp_bench.metrics.score.score_folders`."""

from __future__ import annotations

import argparse
import sys


def add_commands(subparsers) -> None:
    """Add the ``score`` subcommand to an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "score",
        help="score predicted sRGB images against targets (pairs by file stem)",
        description="Score every image in --pred against the image with the same stem in --target; "
        "write per-image scores to Parquet and print a summary with the metric specs.",
    )
    p.add_argument("--pred", required=True, help="folder of predicted sRGB images")
    p.add_argument("--target", required=True, help="folder of target sRGB images")
    p.add_argument(
        "--metrics",
        default=None,
        help="comma-separated metric names (default: psnr,ssim,ssim_rgb,ms_ssim,ms_ssim_rgb,"
        "delta_e76,delta_e76_rms,scielab); see isp_bench.metrics.list_metrics()",
    )
    p.add_argument("--out", default="scores.parquet", help="per-image Parquet file (default: %(default)s)")
    p.set_defaults(func=run_score)


def run_score(args: argparse.Namespace) -> int:
    from isp_bench.errors import IspBenchError

    from .score import score_folders, summary_table

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    try:
        df = score_folders(args.pred, args.target, metrics=metrics, out=args.out)
    except IspBenchError as exc:
        print(f"isp-bench score: error: {exc}", file=sys.stderr)
        return 2
    print(summary_table(df))
    unpaired = df.attrs.get("unpaired", {})
    for key, label in (("pred_only", "predictions without a target"), ("target_only", "targets without a prediction")):
        if unpaired.get(key):
            print(f"skipped {len(unpaired[key])} {label}: {', '.join(unpaired[key][:5])}", file=sys.stderr)
    print(f"wrote {args.out}")
    return 0
