"""``isp-bench submit`` and ``isp-bench rescore``: the command-line face of
:mod:`isp_bench.evaluate.submission`."""

from __future__ import annotations

import argparse
from pathlib import Path

from isp_bench.metrics.cli import metric_names


def add_commands(subparsers) -> None:
    """Add the ``submit`` and ``rescore`` subcommands to an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "submit", help="score an outside model's predictions for a split and record them as a 'submitted' run",
        description="Check that --pred holds exactly one RGB image per pair of the split (<pair_id>.png, in the "
        "orientation and size of the pair's target file, the one the manifest's target_path names, as stored), "
        "score them with the suite and pair handling of `run` (each is turned to the raw's orientation and "
        "cropped to whole 2×2 CFA tiles exactly as the target is), and write "
        "runs/<dataset>-submitted-<name>-<split>-<hash>/result.json with every file's sha256.")
    p.add_argument("--dataset", required=True, help="dataset name (its manifest: manifests/DATASET.parquet)")
    p.add_argument("--split", default="test", help="the manifest split the predictions cover (default: %(default)s)")
    p.add_argument("--pred", type=Path, required=True,
                   help="folder of predictions, one per pair: <pair_id>.png, oriented and sized like its target file")
    p.add_argument("--name", required=True, help="the method's name on the leaderboard (letters, digits, . _ + -)")
    p.add_argument("--paper", default=None, help="citation or URL of the method (default: none)")
    p.add_argument("--runs", type=Path, default=Path("runs"), help="folder of run folders (default: %(default)s)")
    p.add_argument("--manifest", type=Path, default=None, help="manifest (default: manifests/DATASET.parquet)")
    p.add_argument("--root", type=Path, default=None, help="dataset root (default: work/DATASET)")
    p.add_argument("--metrics", type=metric_names, default=None,
                   help="comma-separated metrics (default: the suite `run` scores)")
    _add_scoring_options(p)
    p.set_defaults(func=_cmd_submit)

    p = subparsers.add_parser(
        "rescore", help="add metrics to a finished run from its saved predictions, without its model",
        description="Score RUN/predictions with --metrics; new metrics are added to RUN/result.json and "
        "RUN/per_image.parquet, metrics the run already has are recomputed and must match.")
    p.add_argument("run", type=Path, help="the run folder (runs/<run_id>)")
    p.add_argument("--metrics", type=metric_names, required=True, help="comma-separated metrics to add")
    p.add_argument("--manifest", type=Path, default=None, help="manifest (default: the one result.json names)")
    p.add_argument("--root", type=Path, default=None, help="dataset root (default: work/DATASET)")
    _add_scoring_options(p)
    p.set_defaults(func=_cmd_rescore)


def _add_scoring_options(p: argparse.ArgumentParser) -> None:
    from isp_bench.cli import add_cache_option  # light modules only, like this one
    from isp_bench.parallel import add_scheduler_option, process_count

    p.add_argument("--workers", type=process_count, default=None,
                   help="processes scoring pairs (default: local: 1 = in-process; dask: all CPUs)")
    add_scheduler_option(p, "the scoring of the pairs (workers read the predictions and the dataset's "
                         "preprocessing cache)")
    add_cache_option(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars (default: show them)")


def _cmd_submit(args: argparse.Namespace) -> int:
    import json

    from isp_bench.evaluate.scoring import means_heading
    from isp_bench.evaluate.submission import submit_predictions
    from isp_bench.metrics import describe_unscored

    run_dir = submit_predictions(args.pred, dataset=args.dataset, split=args.split, name=args.name, paper=args.paper,
                                 runs_dir=args.runs, manifest=args.manifest, root=args.root,
                                 cache_dir=args.cache_dir, metrics=args.metrics, workers=args.workers,
                                 scheduler=args.scheduler, progress=not args.quiet)
    result = json.loads((run_dir / "result.json").read_text())
    print(f"submitted run: {run_dir}")
    print(means_heading(result))
    for name, m in result["metrics"].items():
        print(f"  {name:<14} {m['mean']:.4f}")
    if result.get("unavailable_metrics"):
        print(describe_unscored(result["unavailable_metrics"]))
    return 0


def _cmd_rescore(args: argparse.Namespace) -> int:
    from isp_bench.evaluate.submission import rescore_run

    report = rescore_run(args.run, args.metrics, manifest=args.manifest, root=args.root,
                         cache_dir=args.cache_dir, workers=args.workers, scheduler=args.scheduler,
                         progress=not args.quiet)
    for name, m in report["added"].items():
        print(f"  added {name:<14} {m['mean']:.4f}")
    if report["checked"]:
        print(f"  unchanged (recomputed, identical): {', '.join(report['checked'])}")
    for name, why in report["unavailable"].items():
        print(f"  not scored {name}: {why}")
    return 0
