"""The ``isp-bench`` command line. It only parses arguments and calls library functions."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import warnings
from pathlib import Path

from isp_bench import __version__
from isp_bench.devices import DEVICE_NAMES, PRECISIONS
from isp_bench.errors import IspBenchError, IspBenchWarning
from isp_bench.metrics.cli import metric_names
from isp_bench.parallel import add_scheduler_option, process_count
from isp_bench.seeds import check_seed
from isp_bench.train.recipe import BUDGETS

DEFAULT_WORK = Path("work")
# Library packages that contribute subcommands through add_commands(subparsers).
COMMAND_MODULES = ("isp_bench.metrics.cli", "isp_bench.models.cli", "isp_bench.hub.cli",
                   "isp_bench.capture.cli", "isp_bench.qa.cli", "isp_bench.evaluate.cli")


def _cmd_synth(args) -> int:
    from isp_bench.synth import SynthConfig, generate

    check_seed(args.seed)
    config = SynthConfig(scenes=args.scenes, seed=args.seed, height=args.height, width=args.width)
    out = generate(args.out, config, workers=args.workers)
    print(f"wrote {config.scenes} synthetic scenes to {out}")
    return 0


def _print_ingest(result) -> None:
    manifest = result.manifest
    print(f"manifest: {manifest.path} ({len(manifest)} pairs, content hash {manifest.content_hash[:16]}…)")
    print(f"files: {result.files_inspected} inspected, {result.files_reused} reused from the cache, "
          f"{result.seconds:.1f} s")
    if result.errors:
        print(f"{len(result.errors)} file(s) could not be ingested ({len(result.skipped_pairs)} pairs left out); "
              f"report: {result.errors_path}")
        for error in result.errors[:10]:
            print(f"  {error['error']}: {error['message']}")
    layout = result.layout
    if layout is not None and not layout.complete:
        short = [f"{key}: {layout.found.get(key, 0)} of {n}" for key, n in layout.expected.items()
                 if layout.found.get(key, 0) < n]
        missing = layout.missing  # the sources list first what changes every row (a split or licence list)
        named = ", ".join(missing[:3]) + (f", … ({len(missing)} in all)" if len(missing) > 3 else "")
        print(f"warning: {layout.root} is incomplete against the published {layout.source} layout ("
              + ", ".join(short[:4]) + (", …" if len(short) > 4 else "") + ("; " if short and missing else "")
              + (f"missing: {named}" if missing else "")
              + f"); the manifest holds what is there. `isp-bench datasets {layout.source} --root {layout.root}` "
              "lists what is missing", file=sys.stderr)


def _cmd_ingest(args) -> int:
    from isp_bench.ingest import ingest

    from isp_bench.errors import DatasetError

    if args.root is None and not args.lists_only:
        raise DatasetError("ingest needs --root DIR (the dataset folder as downloaded), or --lists-only "
                           "for a manifest built from the shipped split lists alone")
    options = {"model": args.model, "results": args.results}
    result = ingest(args.source, args.root, args.out, workers=args.workers, scheduler=args.scheduler,
                    progress=not args.quiet, options=options, lists_only=args.lists_only)
    _print_ingest(result)
    return 0


def _cmd_manifest_show(args) -> int:
    from isp_bench.manifest import read_manifest, summarize

    print(summarize(read_manifest(args.file)))
    return 0


def _cmd_manifest_validate(args) -> int:
    from isp_bench.manifest import validate_manifest

    report = validate_manifest(args.file, args.root, progress=not args.quiet)
    print(report)
    return 0 if report.ok else 1


def _cmd_datasets(args) -> int:
    from isp_bench.datasets import get_source, list_sources
    from isp_bench.errors import DatasetError

    names = list_sources(args.name or "*")
    if args.name and not names:
        get_source(args.name)  # raises with the near misses
    if args.root is not None and len(names) != 1:
        raise DatasetError("--root checks one dataset folder: name its source, e.g. `isp-bench datasets sid --root DIR`")
    described = [get_source(name).describe() for name in names]
    reports = {}
    if args.root is not None:
        report = get_source(names[0]).check_layout(args.root)
        reports[names[0]] = {"root": report.root, "complete": report.complete, "found": report.found,
                             "expected": report.expected, "missing": report.missing}
        described[0]["layout_check"] = reports[names[0]]
    status = 0 if all(r["complete"] for r in reports.values()) else 1
    if args.json:
        print(json.dumps(described, indent=1))
        return status
    for d in described:
        redistribution = "redistributable" if d["redistributable"] else "no redistribution"
        print(f"{d['name']:<10} {d['title']}\n{'':<10} layout: {d['layout']}\n{'':<10} licence: {d['licence']} "
              f"[{d['licence_class']}, {redistribution}]\n{'':<10} get it: {d['url']}")
        if d.get("notes"):
            print(f"{'':<10} notes: {d['notes']}")
        if d.get("options"):
            print(f"{'':<10} options: " + "; ".join(f"--{k}: {v}" for k, v in d["options"].items()))
        check = reports.get(d["name"])
        if check:
            state = "complete" if check["complete"] else "INCOMPLETE"
            print(f"{'':<10} {check['root']}: {state}")
            for key in sorted(set(check["expected"]) | set(check["found"])):
                exp = check["expected"].get(key)
                print(f"{'':<12} {key}: found {check['found'].get(key, 0)}" + (f" of {exp} expected" if exp else ""))
            if check["missing"]:
                print(f"{'':<12} missing ({len(check['missing'])}):")
                for item in check["missing"][:20]:
                    print(f"{'':<14} {item}")
                if len(check["missing"]) > 20:
                    print(f"{'':<14} … and {len(check['missing']) - 20} more (see --json)")
    return status


def _cmd_demo(args) -> int:
    from isp_bench.ingest import ingest
    from isp_bench.manifest import summarize, validate_manifest
    from isp_bench.synth import SynthConfig, generate

    check_seed(args.seed)
    data_root = args.work / "synth"
    print(f"[1/3] generating the synthetic camera dataset in {data_root}")
    generate(data_root, SynthConfig(scenes=args.scenes, seed=args.seed), workers=args.workers)
    print(f"[2/3] ingesting it into {args.manifest}")
    result = ingest("synth", data_root, args.manifest, workers=args.workers)
    _print_ingest(result)
    print("[3/3] validating the manifest against the files")
    report = validate_manifest(args.manifest, data_root)
    print(report)
    print(summarize(result.manifest))
    print(f"\nDone. Manifest: {args.manifest} (dataset root {data_root}). "
          f"Inspect it with `isp-bench manifest show {args.manifest}` or pandas.read_parquet.")
    return 0 if report.ok and not result.errors else 1


#: What a run folder fixes (``isp-bench evaluate RUN``): these options would ask for another run.
FIXED_BY_RUN = ("--dataset", "--budget", "--seed", "--precision")


def _recorded(args, argv: list[str] | None) -> None:
    """With a run folder (RUN): its config into ``args.config`` and its parent folder as ``--runs``; an option it
    fixes is refused."""
    args.config = None
    if getattr(args, "run_dir", None) is None:
        return
    from isp_bench.runs import RunError, recorded_config

    given = [o for o in FIXED_BY_RUN
             if any(a == o or a.startswith(o + "=") for a in (sys.argv[1:] if argv is None else argv))]
    if given:
        raise RunError(f"{args.run_dir}: a run folder fixes its dataset, budget, seed and precision; leave out "
                       f"{', '.join(given)} (or name the run with --model or --recipe)")
    args.config = recorded_config(args.run_dir)
    args.runs = args.run_dir.parent


def _run_kwargs(args) -> dict:
    return dict(config=args.config, dataset=args.dataset, budget=args.budget, device=args.device, precision=args.precision,
                compile=args.compile, loader_workers=args.loader_workers, loader_threads=args.loader_threads, seed=args.seed, runs_dir=args.runs,
                manifest=args.manifest, root=args.root, cache_dir=args.cache_dir,
                **({"metrics": tuple(args.metrics)} if args.metrics else {}),
                save_predictions=args.save_predictions, scheduler=args.scheduler, progress=not args.quiet)


def _launched(args, argv: list[str] | None) -> int | None:
    """With ``--nproc N`` (N > 1) the command again, in N processes under torchrun: their exit status."""
    if args.nproc <= 1:
        return None
    from isp_bench.distributed import DistributedError, launch

    if args.command in ("run", "train"):  # before N processes say it in a traceback
        from isp_bench.train.recipe import default_recipe, resolve_recipe

        config = args.config or resolve_recipe(args.recipe or default_recipe(args.model), budget=args.budget,
                                               dataset=args.dataset)
        for stage in config["stages"]:
            if stage["batch_size"] % args.nproc:
                raise DistributedError(f"--nproc {args.nproc}: stage {stage['name']}'s global batch_size "
                                       f"{stage['batch_size']} ({config['recipe']}, budget {args.budget}) does not "
                                       "split over that many processes; use a process count that divides it")

    argv = list(sys.argv[1:] if argv is None else argv)
    for i, arg in enumerate(argv):  # drop --nproc N / --nproc=N: each process is one of the N
        if arg == "--nproc":
            del argv[i:i + 2]
            break
        if arg.startswith("--nproc="):
            del argv[i]
            break
    return launch(args.nproc, argv)


def _cmd_train(args, argv=None) -> int:
    from isp_bench.distributed import is_main
    from isp_bench.runs import run_benchmark, weights_file

    _recorded(args, argv)
    launched = _launched(args, argv)
    if launched is not None:
        return launched
    run_dir = run_benchmark(args.model, recipe=args.recipe, evaluate=False, **_run_kwargs(args))
    if is_main():
        print(f"trained weights: {weights_file(run_dir)}")
    return 0


def _cmd_run(args, argv=None) -> int:
    from isp_bench.distributed import is_main
    from isp_bench.leaderboard import build_leaderboard, build_scoreboard
    from isp_bench.runs import describe_reproduction, run_benchmark

    _recorded(args, argv)
    launched = _launched(args, argv)
    if launched is not None:
        return launched
    run_dir = run_benchmark(args.model, recipe=args.recipe, require_trained=args.command == "evaluate",
                            **_run_kwargs(args))
    if not is_main():  # rank 0 reports and writes the leaderboards
        return 0
    from isp_bench.evaluate.scoring import means_heading

    result = json.loads((run_dir / "result.json").read_text())
    print(f"run: {run_dir}")
    print(means_heading(result))
    for name, m in result["metrics"].items():
        print(f"  {name:<14} {m['mean']:.4f}")
    if result.get("reproduces"):  # the run was already recorded (e.g. committed): this was a reproduction of it
        print(describe_reproduction(result["reproduces"]))
    if args.command == "run":
        out = _leaderboards_dir(args.runs, args.leaderboards)
        for board in (build_leaderboard(args.runs, args.dataset, out), build_scoreboard(args.runs, out)):
            print(f"leaderboard: {board}")
    from isp_bench.metrics import describe_unscored

    if result.get("unavailable_metrics"):
        print(describe_unscored(result["unavailable_metrics"]))
    return 0


def _leaderboards_dir(runs: Path, given: Path | None) -> Path:
    """The leaderboards folder: ``given``, else the ``leaderboards`` folder beside ``runs`` (the project's
    ``leaderboards/`` for its ``runs/``), so that runs kept elsewhere never overwrite the project's boards."""
    return given if given is not None else runs.parent / "leaderboards"


def _cmd_leaderboard(args) -> int:
    from isp_bench.leaderboard import LeaderboardError, build_all, build_leaderboard

    if not args.runs.is_dir():  # a mistyped --runs would rewrite the boards beside it without their measured rows
        raise LeaderboardError(f"{args.runs}: no such folder of runs; give --runs the folder that holds the run "
                               "folders (an empty folder gives pages of the papers' reported rows alone)")
    out = _leaderboards_dir(args.runs, args.out)
    boards = [build_leaderboard(args.runs, args.dataset, out)] if args.dataset else build_all(args.runs, out)
    for board in boards:
        print(f"leaderboard: {board}")
    return 0


def _add_run_options(p: argparse.ArgumentParser) -> None:
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("run_dir", nargs="?", type=Path, metavar="RUN",
                       help="a run folder (runs/<run_id>): that run again, with the recipe, dataset, budget, seed and "
                       "precision it was made with (its config.json), on the data it was trained on (default: none; "
                       "name the run with --model or --recipe instead)")
    which.add_argument("--model", help="registered model (see `isp-bench models`), trained with its default recipe")
    which.add_argument("--recipe", help="a recipe by name (isp_bench/train/recipes/NAME.yaml) or a path to a "
                       "recipe YAML; it names its model (default: --model's own recipe, MODEL.yaml)")
    p.add_argument("--dataset", default="synth", help="dataset name (default: %(default)s, the embedded synthetic set)")
    p.add_argument("--budget", default="short", choices=tuple(BUDGETS),
                   help="; ".join(f"{name}: {b['help']}" for name, b in BUDGETS.items()) + " (default: %(default)s)")
    p.add_argument("--device", default="auto",
                   help=f"{DEVICE_NAMES}; auto: a CUDA GPU, else Apple MPS, else the CPU (default: %(default)s)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="numeric precision of training and inference; auto: bf16 on CUDA GPUs that support it, "
                        "fp16 (with loss scaling) on older ones, fp32 on CPU and MPS; part of the run id "
                        "(default: %(default)s)")
    p.add_argument("--compile", action="store_true",
                   help="train through torch.compile (faster steps after a compile of a minute or so; "
                        "default: off)")
    p.add_argument("--loader-workers", type=int, default=None,
                   help="DataLoader worker processes that cut training patches (per process); not part of the "
                        "run id (default: none on the CPU, one per spare core, at most 8, on a GPU)")
    p.add_argument("--loader-threads", action="store_true",
                   help="make the loader workers threads of the training process instead of processes: faster "
                        "on hosts with few cores, where worker processes and the training process share them "
                        "(benchmarks/dataloader.py); the same batches (default: processes)")
    p.add_argument("--nproc", type=process_count, default=1,
                   help="processes on this machine, one per GPU: launches torchrun --standalone (for several "
                        "machines run `torchrun --nnodes ... -m isp_bench` yourself); the recipe's batch is "
                        "split over them (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of model initialisation and patch sampling, 0 to 2**32-1; another seed is another "
                        "run (default: %(default)s)")
    p.add_argument("--runs", type=Path, default=Path("runs"), help="folder of run folders (default: %(default)s)")
    p.add_argument("--manifest", type=Path, default=None, help="manifest (default: manifests/DATASET.parquet)")
    p.add_argument("--root", type=Path, default=None, help="dataset root (default: work/DATASET)")
    add_cache_option(p)
    p.add_argument("--metrics", type=metric_names, default=None,
                   help="comma-separated metrics (default: the standard suite)")
    p.add_argument("--save-predictions", action=argparse.BooleanOptionalAction, default=None,
                   help="keep the 16-bit PNG predictions in RUN/predictions for `isp-bench rescore` (default: for a "
                   "test split of at most 200 pairs)")
    add_scheduler_option(p, "the preprocessing cache build (every backend writes the same cache, so the "
                         "scheduler is not part of the run config or id)")
    p.add_argument("--quiet", action="store_true", help="no progress bars (default: show them)")


def add_cache_option(p: argparse.ArgumentParser) -> None:
    """Add ``--cache-dir`` to a command that reads a dataset through its preprocessing cache."""
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="preprocessing cache folder, needed when the dataset root cannot be written; one folder "
                        "serves every dataset (default: $ISP_BENCH_CACHE, else ROOT/.isp-bench-cache)")


def _add_seed_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the scene choices (light, exposure, noise), 0 to 2**32-1 (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    """The ``isp-bench`` parser. Every option's help says what it does and its default (``%(default)s``
    where the default is a value, in words where it is computed)."""
    parser = argparse.ArgumentParser(prog="isp-bench", description="Datasets, models and metrics for learned camera ISPs.")
    parser.add_argument("--version", action="version", version=f"isp-bench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="generate the synthetic dataset, ingest and validate it (no downloads)")
    p.add_argument("--work", type=Path, default=DEFAULT_WORK,
                   help="working folder; the dataset goes to WORK/synth (default: %(default)s)")
    p.add_argument("--manifest", type=Path, default=Path("manifests/synth.parquet"),
                   help="manifest to write (default: %(default)s)")
    p.add_argument("--scenes", type=int, default=24, help="number of scenes, two pairs each (default: %(default)s)")
    _add_seed_option(p)
    p.add_argument("--workers", type=process_count, default=None, help="processes (default: all CPUs; 1 = in-process)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("synth", help="write the physically based synthetic camera dataset (DNG + JPEG + PNG)")
    p.add_argument("--out", type=Path, required=True,
                   help="dataset folder to write (created; scenes already complete there are kept)")
    p.add_argument("--scenes", type=int, default=24, help="number of scenes, two pairs each (default: %(default)s)")
    _add_seed_option(p)
    p.add_argument("--height", type=int, default=384, help="sensor height in pixels (default: %(default)s)")
    p.add_argument("--width", type=int, default=512, help="sensor width in pixels (default: %(default)s)")
    p.add_argument("--workers", type=process_count, default=None, help="processes (default: all CPUs; 1 = in-process)")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("ingest", help="read a dataset folder in its published layout and write its manifest")
    p.add_argument("source", help="dataset source name (see `isp-bench datasets`)")
    p.add_argument("--root", type=Path, default=None,
                   help="the dataset folder as downloaded (default: none; required unless --lists-only)")
    p.add_argument("--out", type=Path, default=None, help="manifest path (default: manifests/SOURCE.parquet)")
    p.add_argument("--lists-only", action="store_true",
                   help="build the manifest from the split lists the source ships, reading no file (sid) "
                        "(default: read the files under --root)")
    p.add_argument("--model", default=None, help="keep one camera/device (sid: Sony|Fuji; hdrplus: 'Nexus 6P'; "
                   "fivek: D700) (default: every camera)")
    p.add_argument("--results", default=None,
                   help="hdrplus: the results_<date> folder to use as targets (default: the latest results_*)")
    p.add_argument("--workers", type=process_count, default=None,
                   help="processes (default: all CPUs; local: 1 = in-process, and in-process under 64 files)")
    add_scheduler_option(p, "reading and hashing the files")
    p.add_argument("--quiet", action="store_true", help="no progress bar (default: show it)")
    p.set_defaults(func=_cmd_ingest)

    p = sub.add_parser("manifest", help="inspect or validate a manifest")
    msub = p.add_subparsers(dest="manifest_command", required=True, metavar="ACTION")
    q = msub.add_parser("show", help="summary: pairs per split, cameras, exposure and ISO ranges, errors")
    q.add_argument("file", type=Path, help="manifest (.parquet) to summarise")
    q.set_defaults(func=_cmd_manifest_show)
    q = msub.add_parser("validate", help="re-hash every referenced file; exit 1 if any is missing or changed")
    q.add_argument("file", type=Path, help="manifest (.parquet) to check")
    q.add_argument("--root", type=Path, required=True, help="dataset root the manifest's paths are relative to")
    q.add_argument("--quiet", action="store_true", help="no progress bar (default: show it)")
    q.set_defaults(func=_cmd_manifest_validate)

    p = sub.add_parser("datasets", help="list the dataset sources with layout, licence and download; "
                       "with NAME --root DIR, check a download for completeness (exit 1 if incomplete)")
    p.add_argument("name", nargs="?", default=None, help="a source name or pattern (default: all)")
    p.add_argument("--root", type=Path, default=None,
                   help="a downloaded dataset folder to check against NAME (default: no check)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text (default: text)")
    p.set_defaults(func=_cmd_datasets)
    p = sub.add_parser("run", help="train with the paper's recipe, evaluate the test split, score, update the leaderboard")
    _add_run_options(p)
    p.add_argument("--leaderboards", type=Path, default=None,
                   help="folder of the leaderboard markdown files to update (default: the leaderboards folder "
                   "beside --runs: ./leaderboards for ./runs)")
    p.set_defaults(func=_cmd_run)
    p = sub.add_parser("train", help="train (or resume training) a model with its recipe")
    _add_run_options(p)
    p.set_defaults(func=_cmd_train)
    p = sub.add_parser("evaluate", help="evaluate a trained run at full resolution and write result.json")
    _add_run_options(p)
    p.set_defaults(func=_cmd_run)
    p = sub.add_parser("leaderboard", help="build leaderboards/<dataset>.md from runs/*/result.json and the papers' "
                       "reported rows, and the reproduction scoreboard leaderboards/README.md")
    p.add_argument("--dataset", default=None, help="one dataset page only (default: every dataset with results or "
                   "reported rows, and README.md)")
    p.add_argument("--runs", type=Path, default=Path("runs"), help="folder of run folders (default: %(default)s)")
    p.add_argument("--out", type=Path, default=None,
                   help="folder to write <dataset>.md and README.md into (default: the leaderboards folder beside "
                   "--runs: ./leaderboards for ./runs)")
    p.set_defaults(func=_cmd_leaderboard)

    for module in COMMAND_MODULES:
        importlib.import_module(module).add_commands(sub)
    return parser


def _format_warning(message, category, filename, lineno, line=None, _python=warnings.formatwarning) -> str:
    """isp-bench's own warnings as one line, ``warning: <message>``, like its errors; others as Python prints them."""
    if issubclass(category, IspBenchWarning):
        return f"warning: {message}\n"
    return _python(message, category, filename, lineno, line)


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", message=".*Matplotlib.*")
    warnings.formatwarning = _format_warning
    args = build_parser().parse_args(argv)
    try:
        return args.func(args, argv) if args.func in (_cmd_run, _cmd_train) else args.func(args)
    except IspBenchError as exc:
        print(f"isp-bench: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `isp-bench ... | head`: the reader has gone, and so does the rest of the output
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:  # a path the user gave that cannot be used: one line naming it, not a traceback
        where = f"{exc.filename}: {exc.strerror}" if exc.filename is not None else str(exc)
        print(f"isp-bench: error: {where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("isp-bench: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
