"""`isp-bench run`: train a registered model with its paper's recipe, evaluate the test split at full
resolution, score it, and record everything in ``runs/<run_id>/`` (DESIGN §3).

A run's id is a function of the resolved config (the resolved numeric precision included) and the
manifest's content hash (not of the device: see :func:`run_benchmark`), so re-running the same command
on the same data finds the same folder and resumes: a finished training is not repeated (its record is
kept as written), an interrupted one continues from its last checkpoint. A re-run may add an
evaluation; it never erases what an earlier step wrote.

Files of a run: ``config.json`` (resolved recipe), ``checkpoint.pt`` while training, then ``model.pt``
(weights only), ``training.json`` (losses, validation PSNR, speed; written once, by the trainer),
``per_image.parquet``, ``previews/*.png``, and ``result.json``: config, ModelCard, manifest hash and
split, metric specs and aggregates, the training record without its per-step lists, provenance.

Under torchrun (``torchrun --nproc_per_node N -m isp_bench run ...``, or ``isp-bench run --nproc N``)
every process runs :func:`run_benchmark`; see :mod:`isp_bench.distributed` for who does and writes what.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from isp_bench import distributed
from isp_bench.data.cache import PreprocessCache
from isp_bench.devices import loader_workers as resolve_loader_workers
from isp_bench.devices import resolve_device, resolve_precision
from isp_bench.errors import DatasetError, IspBenchError
from isp_bench.evaluate.scoring import (DEFAULT_METRICS, evaluate_model, manifest_record, save_predictions_by_default,
                                          summarize_metrics, write_per_image)
from isp_bench.evaluate.submission import prediction_hashes
from isp_bench.files import atomic_write_text
from isp_bench.manifest import Manifest, check_dataset_root, read_manifest
from isp_bench.models import create_model, model_card
from isp_bench.parallel import check_scheduler
from isp_bench.provenance import environment
from isp_bench.metrics import get_metric
from isp_bench.seeds import check_seed
from isp_bench.train.recipe import RECIPE_SUFFIXES, config_hash, default_recipe, resolve_recipe
from isp_bench.train.trainer import FINAL, train

class RunError(IspBenchError):
    """A run that cannot proceed (e.g. evaluating an untrained model)."""


def resolve_dataset(name: str, manifest: str | os.PathLike | None = None, root: str | os.PathLike | None = None,
                    *, progress: bool = True) -> tuple[Manifest, Path]:
    """The manifest and dataset root of ``name``: ``manifests/<name>.parquet`` and ``work/<name>``
    unless given. The embedded default (``synth``) is generated and ingested when absent. A given manifest of
    another dataset is refused (never overwritten by the embedded one)."""
    manifest_path = Path(manifest) if manifest else Path("manifests") / f"{name}.parquet"
    root_path = Path(root) if root else Path("work") / name
    manifest_obj = read_manifest(manifest_path) if manifest_path.is_file() else None
    if manifest_obj is not None and manifest_obj.dataset != name:
        raise DatasetError(f"{manifest_path}: a manifest of dataset {manifest_obj.dataset!r}, not {name!r}; pass "
                           f"--dataset {manifest_obj.dataset} (and its --root), or a manifest of {name!r}")
    if name == "synth" and root is None:
        from isp_bench.ingest import ingest
        from isp_bench.synth import generate
        from isp_bench.synth.generate import GENERATOR_VERSION

        meta = root_path / "synth.json"
        if meta.exists() and json.loads(meta.read_text()).get("generator_version") != GENERATOR_VERSION:
            print(f"{root_path}: made by an older synthetic-camera version; regenerating", file=sys.stderr)
            shutil.rmtree(root_path)
        if not meta.exists():
            generate(root_path, progress=progress)
        manifest_obj = ingest("synth", root_path, manifest_path, progress=progress).manifest  # cached: instant
    if manifest_obj is None:
        raise DatasetError(f"{manifest_path}: no manifest for dataset {name!r}; run `isp-bench ingest {name} --root DIR "
                           f"--out {manifest_path}` first")
    return manifest_obj, check_dataset_root(manifest_obj, root_path)


def recorded_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The resolved config a run folder was made with (its ``config.json``), for :func:`run_benchmark`."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise RunError(f"{run_dir}: not a run folder (it has no config.json); give a folder of runs/, or --model or "
                       "--recipe")
    try:
        config = json.loads(path.read_text())
    except ValueError as error:
        raise RunError(f"{path}: not readable as a run's config ({error}); run the run's command again, with "
                       "--model or --recipe") from None
    missing = {"model", "recipe", "dataset", "budget", "seed", "precision", "stages"} - set(config)
    if missing:
        raise RunError(f"{path}: not a run's config (it lacks {', '.join(sorted(missing))})")
    return config


def run_id_on(config: dict[str, Any], manifest: Manifest) -> str:
    """The run id of ``config`` trained on ``manifest``: the manifest's content hash joins the config first
    (other data, other run: a run never resumes across it)."""
    config["manifest_content_hash"] = manifest.content_hash
    return run_id_for(config)


def run_id_for(config: dict[str, Any]) -> str:
    """``DATASET-RECIPE-BUDGET-seedN-HASH`` (a model's default recipe carries the model's name)."""
    recipe = config["recipe"]
    if recipe.endswith(RECIPE_SUFFIXES):  # a recipe file's name, as a word
        recipe = Path(recipe).stem
    return f"{config['dataset']}-{recipe}-{config['budget']}-seed{config['seed']}-{config_hash(config)}"


def run_benchmark(
    model_name: str | None = None,
    *,
    recipe: str | None = None,
    dataset: str = "synth",
    budget: str = "short",
    device: str = "auto",
    precision: str = "auto",
    compile: bool = False,
    loader_workers: int | None = None,
    loader_threads: bool = False,
    seed: int = 0,
    runs_dir: str | os.PathLike = "runs",
    manifest: str | os.PathLike | None = None,
    root: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    overrides: dict[str, Any] | None = None,
    evaluate: bool = True,
    require_trained: bool = False,
    save_predictions: bool | None = None,
    scheduler: str = "local",
    progress: bool = True,
    on_step=None,
    config: dict[str, Any] | None = None,
) -> Path:
    """Train (resuming), evaluate and record one model; returns the folder this call wrote its results
    to: the run folder, or its :func:`reproduction_dir` when the run was already recorded.

    ``config``: a run's own resolved config (its ``config.json``, see :func:`recorded_config`) instead of
    ``recipe``, ``dataset``, ``budget``, ``seed``, ``precision`` and ``overrides``: the same run, on the data
    it was trained on (another manifest content is refused).

    ``recipe`` names the recipe to run (default: ``model_name``'s default recipe); ``model_name`` may
    then be omitted. ``require_trained`` refuses to train (``isp-bench evaluate``); ``evaluate=False`` only trains.
    ``save_predictions`` keeps the 16-bit PNG predictions in ``predictions/`` (default: for the test
    split of a small split, see :func:`~isp_bench.evaluate.scoring.save_predictions_by_default`).
    ``device``: see :func:`isp_bench.devices.resolve_device` (``auto``: CUDA, else MPS, else CPU).
    ``precision``: see :func:`isp_bench.devices.resolve_precision` (``auto``: bf16 on CUDA GPUs that have
    it, fp16 on older ones, fp32 elsewhere); training and evaluation both use it. ``compile``: train
    through :func:`torch.compile` (not part of the run id). ``loader_workers``: DataLoader worker
    processes, or threads with ``loader_threads`` (default :func:`isp_bench.devices.loader_workers`; not part
    of the run id, the batches are the same with any number of either). ``scheduler``: where the preprocessing cache
    is built (:func:`isp_bench.parallel.executor`); not part of the run id, as every backend writes the
    same bytes. ``cache_dir``: the preprocessing cache folder (:func:`isp_bench.data.cache.cache_folder`; default
    ``$ISP_BENCH_CACHE``, else ``<root>/.isp-bench-cache``); not part of the run id.

    Every argument is checked (seed, scheduler, device, model and its recipe, budget, metrics, manifest,
    dataset root and a cache folder that can be written when pairs are missing from it) before anything is written: a bad one raises an :class:`IspBenchError` and leaves
    no run folder behind.

    The device is not part of the run id: the same model, recipe, seed and data on ``cpu`` and on
    ``cuda`` differ only by floating-point rounding, so they are the same run, and a run trained on
    one device is resumed or evaluated on another. The device each evaluation ran on (name, torch,
    CUDA and cuDNN versions) is recorded in ``result.json`` under ``provenance.device``, beside the
    ``precision`` and the number of ``processes``. The resolved precision is part of the config and the run id:
    16-bit arithmetic changes the numbers beyond rounding.
    """
    wall_start = time.perf_counter()
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    seed = check_seed(seed)
    check_scheduler(scheduler)
    device = resolve_device(distributed.local_device(device))
    # a bad count fails here, before anything is written
    resolve_loader_workers(loader_workers, device, distributed.local_world_size(), threads=loader_threads)
    if config is None:
        again = (f"--recipe {recipe or default_recipe(model_name)} --dataset {dataset} --budget {budget} "
                 f"--seed {seed}")
        config = resolve_recipe(recipe or default_recipe(model_name), budget=budget, dataset=dataset, seed=seed,
                                precision=resolve_precision(precision, device), overrides=overrides)
        trained_on = None
    else:  # a recorded run's own
        config, again = dict(config), None  # the command again names the run folder
        trained_on = config.pop("manifest_content_hash", None)
        resolve_precision(config["precision"], device)  # one this device has
        dataset, budget, seed = config["dataset"], config["budget"], config["seed"]
    if model_name is not None and model_name != config["model"]:
        raise RunError(f"recipe {config['recipe']!r} trains {config['model']!r}, not {model_name!r}")
    model_name = config["model"]
    for name in metrics:
        get_metric(name)  # unknown names fail here, with the registered ones
    with distributed.process_group(device):
        with distributed.main_first():  # the embedded dataset is generated once, not by every rank at once
            manifest_obj, root_path = resolve_dataset(dataset, manifest, root,
                                                      progress=progress and distributed.is_main())
            if trained_on is not None and trained_on != manifest_obj.content_hash:
                raise RunError(f"{manifest_obj.path} holds other data than the run was trained on (content hash "
                               f"{manifest_obj.content_hash[:16]}…, the run's {trained_on[:16]}…); give --manifest "
                               "(and --root) of the data it was trained on")
            cache = PreprocessCache(root_path, cache_dir)
            cache.missing(manifest_obj.rows())  # an unwritable cache folder fails here, naming the fix
        run_dir = Path(runs_dir) / run_id_on(config, manifest_obj)
        again = again or str(run_dir)
        if require_trained and config["stages"] and not (run_dir / FINAL).exists():
            if (run_dir / "result.json").exists():  # recorded (committed, say), its weights not kept
                raise RunError(f"{run_dir}: a recorded run whose weights ({FINAL}, which git does not keep) are not "
                               f"here; `isp-bench run {again}` trains them again and reproduces it in "
                               f"{run_dir / REPRODUCTION}")
            raise RunError(f"{run_dir}: {model_name} has not finished training with this config; run `isp-bench train "
                           f"{again}` first")
        out_dir = results_dir(run_dir)
        _train_and_evaluate(run_dir, out_dir, config, manifest_obj, root_path, cache.dir, device=device,
                            compile=compile,
                            loader_workers=loader_workers, loader_threads=loader_threads, metrics=metrics, evaluate=evaluate, save_predictions=save_predictions, scheduler=scheduler,
                            progress=progress, on_step=on_step, started=started, wall_start=wall_start)
    return out_dir


REPRODUCTION = "reproduction"
"""Sub-folder of a recorded run where running it again writes (see :func:`reproduction_dir`)."""


def results_dir(run_dir: Path) -> Path:
    """Where running ``run_dir``'s config writes its results: the run folder, or its :func:`reproduction_dir`
    once the run is recorded."""
    return reproduction_dir(run_dir) if (run_dir / "result.json").exists() else run_dir


def reproduction_dir(run_dir: Path) -> Path:
    """Where running a *recorded* run again (one whose ``result.json`` exists) writes its results.

    A run folder is append-only: a re-run never overwrites what an earlier one recorded (committed
    leaderboard runs included, whose weights are not kept). Running it again is a reproduction: it
    trains into ``run_dir/reproduction/`` when the run's weights are absent (or reuses them when
    present), evaluates there, and its ``result.json`` says whether it reproduced the record
    (``reproduces``). An interrupted reproduction resumes there like any run."""
    return run_dir / REPRODUCTION


def weights_file(out_dir: Path) -> Path:
    """The weights of the call that wrote ``out_dir`` (what :func:`run_benchmark` returns): a reproduction of a
    recorded run whose weights are kept evaluates those again; any other call trains (or resumes) its own."""
    recorded = out_dir.parent / FINAL
    return recorded if out_dir.name == REPRODUCTION and recorded.exists() else out_dir / FINAL


def _numerics(result: dict[str, Any]) -> dict[str, Any]:
    """The facts of a run's provenance that decide its floating-point rounding: processor or GPU (and the instruction
    set torch's kernels use on it), torch, threads, processes and the optimiser's implementation (:func:`~isp_bench.train.trainer.optimizer_implementation`; runs
    recorded before it was are known only on the CPU, where the trainer used torch's per-tensor loop then)."""
    prov = result.get("provenance", {})
    device = prov.get("device") or {}
    used = (result.get("training") or {}).get("optimizer_implementation")
    if used is None and result.get("config", {}).get("stages") and device.get("type") == "cpu":
        used = ["for-loop"]
    return {"device": device.get("name"), "capability": device.get("capability"), "torch": device.get("torch"),
            "torch_threads": prov.get("torch_threads"),
            "processes": prov.get("processes"), "optimizer": "+".join(sorted(set(used))) if used else None}


#: Largest relative difference of a metric mean that is rounding in the metric's own float64 arithmetic (numpy's and
#: BLAS's kernels differ between hosts in the last digits, ~1e-12 here), not a change of the model's output: a
#: training that ran differently moves every metric by far more (0.14 dB of PSNR on another processor).
ROUNDING = 1e-9


def compare_with_record(record: dict[str, Any], result: dict[str, Any], retrained: bool = True) -> dict[str, Any]:
    """How a reproduction's metric means compare with the recorded ones: ``retrained`` (whether it trained the
    weights again, or evaluated the recorded run's kept weights again), ``identical`` (every metric
    both have is equal to the last bit), ``rounding_only`` (not identical, but every difference is under
    :data:`ROUNDING` of the value), the ``differences`` (metric → [recorded, reproduced]) and
    ``environment_differences`` (:func:`_numerics` fact → [recorded, now]): another processor, torch or thread
    count picks other floating-point kernels, whose rounding training amplifies, so only the same ones promise the
    same bits."""
    shared = sorted(set(record["metrics"]) & set(result["metrics"]))
    differences = {name: [record["metrics"][name]["mean"], result["metrics"][name]["mean"]] for name in shared
                   if record["metrics"][name]["mean"] != result["metrics"][name]["mean"]}
    rounding_only = bool(differences) and all(abs(a - b) <= ROUNDING * max(abs(a), abs(b))
                                              for a, b in differences.values())
    was, now = _numerics(record), _numerics(result)
    return {"run_id": record["run_id"], "retrained": retrained, "identical": not differences and bool(shared),
            "rounding_only": rounding_only, "metrics_compared": shared, "differences": differences,
            "environment_differences": {k: [was[k], now[k]] for k in was if was[k] is not None and was[k] != now[k]}}


def describe_reproduction(reproduces: dict[str, Any]) -> str:
    """What :func:`compare_with_record` found, in words (the CLI prints it): each differing mean with as many
    decimals as it takes to tell the two apart."""
    def apart(a: float, b: float) -> str:
        digits = next((d for d in range(4, 17) if f"{a:.{d}f}" != f"{b:.{d}f}"), 17)
        return f"recorded {a:.{digits}f}, now {b:.{digits}f}"

    if reproduces.get("retrained", True):  # records made before it was recorded retrained
        said = f"reproduction of the recorded run {reproduces['run_id']} (its files are left as they were): "
    else:
        said = (f"the recorded run {reproduces['run_id']}'s own weights evaluated again, not trained again (its files "
                f"are left as they were; this evaluation is in its {REPRODUCTION}/): ")
    if reproduces["identical"]:
        return said + "every metric identical"
    listed = ", ".join(f"{k} {apart(a, b)}" for k, (a, b) in reproduces["differences"].items())
    if reproduces.get("rounding_only"):
        return (said + f"every metric identical but in the last digits of {listed}: rounding in the metric's own "
                "arithmetic on this host, not a change of the model's output")
    said += "differs: " + listed
    elsewhere = reproduces.get("environment_differences")
    if elsewhere:
        said += ("\n  recorded with " + ", ".join(f"{k} {a}" for k, (a, _) in elsewhere.items()) + "; now "
                 + ", ".join(f"{k} {b}" for k, (_, b) in elsewhere.items()) + ": other floating-point kernels round "
                 "differently and training amplifies it; the same bits need the same processor, torch and threads")
    return said


def _train_and_evaluate(run_dir: Path, out_dir: Path, config: dict[str, Any], manifest_obj: Manifest, root_path: Path,
                        cache_dir: Path, **kwargs) -> None:
    """The body of :func:`run_benchmark` once everything is checked, run by every process (rank 0 writes).
    Results go to ``out_dir``: ``run_dir`` itself, or its :func:`reproduction_dir` when it is recorded. A folder this
    call makes is removed again if the call fails before recording anything in it but the config."""
    new_folders = [folder for folder in (out_dir, run_dir) if not folder.exists()]  # the innermost first
    try:
        _train_and_evaluate_in(run_dir, out_dir, config, manifest_obj, root_path, cache_dir, **kwargs)
    except BaseException:
        if distributed.is_main():
            for folder in new_folders:
                _remove_if_nothing_recorded(folder)
        raise


def _remove_if_nothing_recorded(folder: Path) -> None:
    """Remove a run folder this call made when it failed before writing anything but its ``config.json`` (a patch
    larger than the frames, an init the model lacks): nothing in it can resume, and a folder left behind reads as a
    run."""
    if folder.is_dir() and all(path.name == "config.json" for path in folder.rglob("*") if not path.is_dir()):
        shutil.rmtree(folder)


def _train_and_evaluate_in(run_dir: Path, out_dir: Path, config: dict[str, Any], manifest_obj: Manifest,
                           root_path: Path, cache_dir: Path, *, device: str, compile: bool, loader_workers: int | None,
                           loader_threads: bool, metrics: Sequence[str], evaluate: bool,
                           save_predictions: bool | None, scheduler: str, progress: bool, on_step, started: str,
                           wall_start: float) -> None:
    main = distributed.is_main()
    model_name, dataset, budget, seed = config["model"], config["dataset"], config["budget"], config["seed"]
    run_dir.mkdir(parents=True, exist_ok=True)
    if main:
        atomic_write_text(run_dir / "config.json", json.dumps(config, indent=1, sort_keys=True) + "\n")

    torch.manual_seed(seed)
    model = create_model(model_name)
    train_dir = weights_file(out_dir).parent
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
    training = train(model, config, manifest_obj, root_path, train_dir, device=device, cache_dir=cache_dir,
                     compile=compile, loader_workers=loader_workers, loader_threads=loader_threads,
                     scheduler=scheduler, on_step=on_step,
                     progress=progress and main)  # as training.json holds it
    if not evaluate:
        return

    eval_cfg = config["eval"]
    if save_predictions is None:
        n_pairs = sum(row["split"] == eval_cfg["split"] for row in manifest_obj.rows())
        save_predictions = save_predictions_by_default(eval_cfg["split"], n_pairs)
    eval_start = time.perf_counter()
    frame, unavailable = evaluate_model(model, manifest_obj, root_path, split=eval_cfg["split"], metrics=metrics,
                                        truth=eval_cfg.get("truth", "target"), tile=eval_cfg["tile"],
                                        overlap=eval_cfg["overlap"], device=device,
                                        precision=config["precision"], cache_dir=cache_dir, scheduler=scheduler,
                                        previews_dir=out_dir / "previews", n_previews=eval_cfg["previews"],
                                        predictions_dir=out_dir / "predictions" if save_predictions else None,
                                        progress=progress and main)
    eval_seconds = time.perf_counter() - eval_start
    if not main:
        return
    write_per_image(frame, out_dir / "per_image.parquet")
    scored = [m for m in metrics if m not in unavailable]
    card = model_card(model_name, measure=True).to_dict()
    result = {
        "run_id": run_dir.name,
        "kind": "measured",
        "model": model_name,
        "dataset": dataset,
        "split": eval_cfg["split"],
        "budget": budget,
        "seed": seed,
        "config": config,
        "model_card": card,
        "manifest": manifest_record(manifest_obj, frame, frame.attrs["left_out"]),
        "metrics": summarize_metrics(frame, scored),
        "unavailable_metrics": unavailable,
        "training": {k: v for k, v in training.items() if k not in ("losses", "grad_norms", "validation_psnr")},
        "evaluation": {"seconds": eval_seconds, "frames": int(len(frame)),
                       # the median: the first frame also pays for cuDNN's autotuning of its tile shapes
                       "s_per_frame": float(frame["seconds"].median()) if len(frame) else None,
                       "tile": eval_cfg["tile"], "overlap": eval_cfg["overlap"],
                       "predictions": "predictions" if save_predictions else None,
                       "prediction_files": prediction_hashes(out_dir / "predictions") if save_predictions else None},
        "provenance": {**_environment(device, config["precision"]), "seed": seed, "started": started,
                       "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                       "wall_s": time.perf_counter() - wall_start},
    }
    if out_dir != run_dir:
        result["reproduces"] = compare_with_record(json.loads((run_dir / "result.json").read_text()), result,
                                                   retrained=train_dir == out_dir)
    atomic_write_text(out_dir / "result.json", json.dumps(result, indent=1, sort_keys=True, default=str) + "\n")


def _environment(device: str, precision: str) -> dict[str, Any]:
    """:func:`~isp_bench.provenance.environment` with the ``precision`` computed in and the job's
    ``processes`` (torchrun's world size) recorded beside the device."""
    return {**environment(device=device), "precision": precision, "processes": distributed.world_size()}
