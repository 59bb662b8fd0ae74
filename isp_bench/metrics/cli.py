"""``isp-bench score`` and ``isp-bench weights``: the command-line face of
:func:`isp_bench.metrics.score.score_folders` and :mod:`isp_bench.metrics.weights`.

Only the standard library is imported here; the metrics are imported when a command runs.
"""

from __future__ import annotations

import argparse
import sys


def metric_names(text: str) -> list[str]:
    """The argparse type of every ``--metrics``: comma-separated metric names. An empty list is refused (it
    silently meant the default suite)."""
    names = [m.strip() for m in text.split(",") if m.strip()]
    if not names:
        raise argparse.ArgumentTypeError("name at least one metric, e.g. psnr,ssim")
    return names


class _DefaultSuite:
    """``--metrics`` default: the registry's default suite, looked up only when help shows it."""

    def __str__(self) -> str:
        from isp_bench.metrics import DEFAULT_METRICS

        return ", ".join(DEFAULT_METRICS)


def add_commands(subparsers) -> None:
    """Add the ``score`` and ``weights`` subcommands to an argparse ``subparsers`` object."""
    from isp_bench.parallel import add_scheduler_option, process_count  # standard library only, like this module

    p = subparsers.add_parser(
        "score",
        help="score predicted sRGB images against targets (pairs by file stem)",
        description="Score every image in --pred against the image with the same stem in --target; "
        "write per-image scores to Parquet and print a summary with the metric specs, then every "
        "metric that could not be scored (missing weights) and how to fix it. Exit status 1 when the scores are "
        "incomplete: a target without a prediction, or a metric named in --metrics that could not be scored "
        "(the default suite leaves out what this machine cannot score, with status 0); 2 on an error.",
    )
    p.add_argument("--pred", required=True, help="folder of predicted sRGB images")
    p.add_argument("--target", required=True, help="folder of target sRGB images")
    p.add_argument(
        "--metrics",
        type=metric_names,
        default=_DefaultSuite(),
        help="comma-separated metric names, e.g. psnr,ssim (default: the default suite: %(default)s); "
        "see isp_bench.metrics.list_metrics()",
    )
    p.add_argument("--out", default="scores.parquet", help="per-image Parquet file (default: %(default)s)")
    p.add_argument("--workers", type=process_count, default=None,
                   help="processes scoring pairs (default: local: 1 = in-process; dask: all CPUs)")
    add_scheduler_option(p, "the scoring of the pairs")
    p.set_defaults(func=run_score)

    w = subparsers.add_parser(
        "weights",
        help="list the trained weight files the metrics and models use; fetch one",
        description="List every trained weight file the suite can use: what reads it, where it is "
        "looked up, whether it is present (or the wrong file: not the published hash, or not readable "
        "as that model) and its SHA-256. Files with a published location and hash "
        "are downloaded into the torch hub cache on first use unless offline (HF_HUB_OFFLINE=1 or "
        "ISP_BENCH_OFFLINE=1); --fetch downloads one now.",
    )
    w.add_argument("--fetch", metavar="NAME", default=None,
                   help="download the weight file NAME (see the list) into the torch hub cache, "
                   "checking its published hash (default: only list)")
    w.add_argument("--json", action="store_true", help="print the list as JSON (default: a table)")
    w.set_defaults(func=run_weights)


def run_score(args: argparse.Namespace) -> int:
    from isp_bench.errors import IspBenchError

    from . import describe_unscored
    from .score import score_folders, summary_table

    metrics = None if isinstance(args.metrics, _DefaultSuite) else args.metrics
    try:
        df = score_folders(args.pred, args.target, metrics=metrics, out=args.out, workers=args.workers,
                           scheduler=args.scheduler)
    except IspBenchError as exc:
        print(f"isp-bench score: error: {exc}", file=sys.stderr)
        return 2
    print(summary_table(df))
    unpaired = df.attrs.get("unpaired", {})
    for key, what, without in (("pred_only", "prediction", "a target"), ("target_only", "target", "a prediction")):
        if stems := unpaired.get(key):
            print(f"skipped {len(stems)} {what}{'s' if len(stems) > 1 else ''} without {without}: "
                  f"{', '.join(stems[:5])}{', …' if len(stems) > 5 else ''}", file=sys.stderr)
    print(f"wrote {args.out}")
    unavailable = df.attrs.get("unavailable", {})
    if unavailable:
        print(describe_unscored(unavailable))
    # incomplete scores fail a script that relies on them; the default suite adapts to the machine, as `run` does
    return 1 if unpaired.get("target_only") or (metrics and unavailable) else 0


def run_weights(args: argparse.Namespace) -> int:
    import json

    from isp_bench.errors import IspBenchError

    from .weights import get_weight_file, weights_report

    if args.fetch:
        try:
            path = get_weight_file(args.fetch).fetch()
        except IspBenchError as exc:
            print(f"isp-bench weights: error: {' '.join(str(exc).split())}", file=sys.stderr)
            return 2
        print(f"{args.fetch}: {path}")
        return 0
    rows = weights_report()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for r in rows:
        state = {"present": "present", "missing": "MISSING", "wrong": "WRONG"}[r["status"]]
        print(f"{r['name']:<18} {state:<8} {r['used_by']}")
        print(f"{'':<18} file: {r['filename']}")
        for label, path in r["locations"]:
            print(f"{'':<18} looks in {label}: {path or '(not set)'}")
        if r["path"]:
            check = {True: " (matches the published prefix)", False: " (DOES NOT match the published "
                     f"prefix {r['published_sha256_prefix']})", None: ""}[r["hash_ok"]]
            print(f"{'':<18} sha256: {r['sha256']}{check}")
        if r["problem"]:  # a variable naming no file, or the wrong file: what is wrong and the fix
            print(f"{'':<18} problem: {r['problem']}")
        elif r["path"] is None and r["fetchable"]:
            print(f"{'':<18} fetched on first use, or now: isp-bench weights --fetch {r['name']} "
                  f"({r['url']}, sha256 {r['published_sha256_prefix']}…)")
        elif r["path"] is None:
            print(f"{'':<18} get it: {r['how_to_get']}")
    return 0
