"""Outside submissions and rescoring: score a folder of predictions made anywhere, with the suite's
metrics and pair handling, and add metrics to old runs without loading their model.

A predictions folder holds exactly one RGB image per pair of a split, at ``<pair_id>.<ext>`` (a
pair id's ``/`` makes sub-folders; 16-bit PNG is what ``evaluate`` writes, 8-bit PNG and TIFF are
read too): the layout of :func:`isp_bench.evaluate.scoring.prediction_path`. A submitted image is in the
orientation and size of its pair's target file (the file the manifest's ``target_path`` names, as stored):
what an outside method makes. It is scored as the target is, turned to the raw's orientation and cropped to
whole 2×2 CFA tiles (:func:`isp_bench.data.cache.cache_geometry`), by
:func:`isp_bench.evaluate.scoring.score_output`, as ``evaluate`` scores its output, so a submission and a
measured run of the same images get the same numbers; the pairs can be scored in parallel (``workers``,
``scheduler``: :func:`isp_bench.parallel.executor`) with the same result. (``evaluate --save-predictions``
writes its predictions already turned and cropped, the cache's geometry, which ``rescore`` reads them in.)

A submission is recorded like a measured run, in ``runs/<run_id>/`` (``result.json`` in the same
format plus ``"kind": "submitted"`` and ``"submission"`` with every file's sha256 and their geometry,
``per_image.parquet``, ``previews/`` and a copy of the files in ``predictions/``), with the run id
``<dataset>-submitted-<name>-<split>-<hash>``; ``hash`` is the first 8 hex digits of the sha256 of
the files' hashes and the manifest's content hash, so other files or other data give another run. It is
written into a hidden ``runs/.<run_id>.partial/`` and renamed when complete (a failed submission leaves no run),
and a recorded run is never overwritten: the same files again are refused (``rescore`` adds metrics), and
``rescore`` checks each saved prediction against the sha256 its run recorded before it scores them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from isp_bench.errors import IspBenchError

SUBMISSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
PREDICTIONS = "predictions"


class SubmissionError(IspBenchError):
    """A predictions folder that does not match its split, or a run that cannot be rescored."""


def prediction_files(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """``({pair_id: file}, problems)`` for the image files under ``folder`` (recursively; the pair id
    is the path relative to ``folder`` without its suffix). Two images for one pair id are a problem."""
    from isp_bench.images import IMAGE_SUFFIXES

    folder = Path(folder)
    if not folder.is_dir():
        raise SubmissionError(f"{folder}: predictions folder not found; pass the folder that holds <pair_id>.png files")
    files: dict[str, Path] = {}
    problems = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
        pair_id = path.relative_to(folder).with_suffix("").as_posix()
        if pair_id in files:
            problems.append(f"duplicate: {path} and {files[pair_id]} are both pair {pair_id!r}; keep one")
        else:
            files[pair_id] = path
    return files, problems


TARGET_FILE = "target_file"
"""The geometry of submitted predictions (recorded in their run): that of each pair's target file."""
ORIENTATION_RULE = "save each prediction in the orientation and size of its pair's target file, as stored"


def target_file_size(row: dict[str, Any], root: Path) -> tuple[int, int]:
    """(height, width) of the pair's display target file as stored: the manifest's ``target_height`` and
    ``target_width``, else its header's."""
    from PIL import Image

    from isp_bench.manifest import check_manifest_path

    if row.get("target_height") and row.get("target_width"):
        return int(row["target_height"]), int(row["target_width"])
    with Image.open(check_manifest_path(row["target_path"], pair_id=row["pair_id"], column="target_path",
                                        root=root)) as image:
        return image.size[1], image.size[0]


def check_predictions(folder: Path, dataset, truth: str = "target", *,
                      target_file_geometry: bool = True) -> dict[str, Path]:
    """The prediction file of every pair of ``dataset`` (a :class:`~isp_bench.data.PairDataset`): each in
    its target file's geometry (:func:`target_file_size`), or with ``target_file_geometry=False`` in the
    cache's (the size of the cached ``truth``, as ``evaluate`` writes predictions).

    Raises one :class:`SubmissionError` listing every problem: a pair without a file (missing), a
    file that is no pair of the split (extra), two files for one pair, and a file that is not an RGB
    image of the expected size (wrong size, unreadable).
    """
    from isp_bench.evaluate.scoring import prediction_path
    from isp_bench.metrics.score import ScoreError, read_srgb

    files, problems = prediction_files(folder)
    expected = {row["pair_id"]: index for index, row in enumerate(dataset.rows)}
    problems += [f"missing: {prediction_path(folder, pair_id)} (pair {pair_id!r})"
                 for pair_id in sorted(set(expected) - set(files))]
    problems += [f"extra: {files[pair_id]} (no pair {pair_id!r} in split {dataset.rows[0]['split']!r})"
                 for pair_id in sorted(set(files) - set(expected))]
    for pair_id in sorted(set(files) & set(expected)):
        row = dataset.rows[expected[pair_id]]
        if target_file_geometry:
            (height, width), of = target_file_size(row, dataset.cache.root), f"its target file {row['target_path']}"
        else:
            (height, width), of = getattr(dataset.cache.load(row), truth).shape[1:], "its target"
        try:
            shape = read_srgb(files[pair_id]).shape
        except ScoreError as exc:
            problems.append(f"unreadable: {exc}")
            continue
        if shape[:2] != (height, width):
            problems.append(f"wrong size: {files[pair_id]} is {shape[1]}×{shape[0]} (width×height), {of} is "
                            f"{width}×{height}")
    if problems:
        split = dataset.rows[0]["split"]
        raise SubmissionError(
            f"{folder}: {len(problems)} problem(s) with the predictions for {len(expected)} pairs of "
            f"{dataset.manifest.dataset} split {split!r} (one RGB image per pair, named <pair_id>.png, "
            f"e.g. {prediction_path(folder, dataset.rows[0]['pair_id'])}"
            + (f"; {ORIENTATION_RULE}" if target_file_geometry else ", the size of its target") + "):\n  "
            + "\n  ".join(problems))
    return {pair_id: files[pair_id] for pair_id in expected}


def score_predictions(files: dict[str, Path], dataset, *, metrics: Sequence[str], truth: str = "target",
                      target_file_geometry: bool = True, previews_dir: Path | None = None, n_previews: int = 4,
                      workers: int | None = None, scheduler: str = "local", progress: bool = True):
    """Score checked prediction files (:func:`check_predictions`, the same ``target_file_geometry``) as
    ``evaluate`` scores its output (:func:`~isp_bench.evaluate.scoring.score_files`, on ``scheduler``'s backend
    with ``workers``); returns (per-image frame, unavailable metrics)."""
    from isp_bench.evaluate.scoring import score_files

    return score_files([files[row["pair_id"]] for row in dataset.rows], dataset, metrics=metrics, truth=truth,
                       previews_dir=previews_dir, n_previews=n_previews, workers=workers, scheduler=scheduler,
                       progress=progress, target_file_geometry=target_file_geometry)


def _split_dataset(dataset: str, split: str, manifest, root, cache_dir, progress: bool):
    from isp_bench.data import PairDataset
    from isp_bench.runs import resolve_dataset

    manifest_obj, root_path = resolve_dataset(dataset, manifest, root, progress=progress)
    return manifest_obj, PairDataset(manifest_obj, root_path, split, cache_dir=cache_dir, progress=progress)


def prediction_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file in a predictions folder, by its path relative to the folder (``/``-separated): what a
    run records of its saved predictions, so that ``rescore`` can tell they are still the ones scored."""
    from isp_bench.files import sha256_file

    return {p.relative_to(folder).as_posix(): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def submission_run_id(dataset: str, split: str, name: str, hashes: dict[str, str], manifest_hash: str) -> str:
    """``<dataset>-submitted-<name>-<split>-<hash>`` (see the module docstring)."""
    digest = hashlib.sha256(json.dumps({"files": hashes, "manifest": manifest_hash}, sort_keys=True).encode())
    return f"{dataset}-submitted-{name}-{split}-{digest.hexdigest()[:8]}"


def submit_predictions(
    pred_dir: str | os.PathLike,
    *,
    dataset: str,
    name: str,
    split: str = "test",
    paper: str | None = None,
    runs_dir: str | os.PathLike = "runs",
    manifest: str | os.PathLike | None = None,
    root: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    metrics: Sequence[str] | None = None,
    n_previews: int = 4,
    workers: int | None = None,
    scheduler: str = "local",
    progress: bool = True,
) -> Path:
    """Score an outside model's predictions for ``split`` of ``dataset`` and record them as a run
    of kind ``submitted``; returns the run folder. ``metrics`` defaults to the suite ``run`` uses;
    ``workers`` and ``scheduler`` say where the pairs are scored (:func:`score_predictions`); ``cache_dir``: the
    dataset's preprocessing cache (:func:`isp_bench.data.cache.cache_folder`)."""
    from isp_bench.evaluate.scoring import DEFAULT_METRICS
    from isp_bench.files import sha256_file
    from isp_bench.metrics import get_metric

    if not SUBMISSION_NAME.fullmatch(name):
        raise SubmissionError(f"submission name {name!r} must be letters, digits, '.', '_', '+' or '-' "
                              "(it becomes part of the run id), e.g. my-isp-v2")
    metrics = tuple(metrics or DEFAULT_METRICS)
    for metric in metrics:
        get_metric(metric)  # an unknown name fails before anything is read or written
    wall_start = time.perf_counter()
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    pred_dir = Path(pred_dir).resolve()
    manifest_obj, pairs = _split_dataset(dataset, split, manifest, root, cache_dir, progress)
    files = check_predictions(pred_dir, pairs)  # fail on a bad folder before hashing or scoring
    relative = {pair_id: path.relative_to(pred_dir).as_posix() for pair_id, path in files.items()}
    hashes = {relative[pair_id]: sha256_file(path) for pair_id, path in files.items()}
    run_dir = Path(runs_dir) / submission_run_id(dataset, split, name, hashes, manifest_obj.content_hash)
    if (run_dir / "result.json").exists():
        raise SubmissionError(f"{run_dir}: these predictions are already recorded there (the run id comes from the "
                              "files' and the manifest's hashes), and a recorded run is never overwritten; nothing "
                              f"was written. To add metrics to it: isp-bench rescore {run_dir} --metrics NAMES")
    # everything is written into a hidden folder beside the run's, which becomes the run's only when it is complete
    staging = run_dir.with_name(f".{run_dir.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)  # left by a submission that was killed
    try:
        result = _score_submission(files, relative, hashes, staging, pairs, manifest_obj, metrics=metrics,
                                   dataset=dataset, split=split, name=name, paper=paper, pred_dir=pred_dir,
                                   n_previews=n_previews, workers=workers, scheduler=scheduler, progress=progress)
        result["run_id"] = run_dir.name
        result["provenance"].update(started=started, wall_s=time.perf_counter() - wall_start)
        _write_json(staging / "result.json", result)
        shutil.rmtree(run_dir, ignore_errors=True)  # a run folder without result.json: an unfinished older one
        staging.rename(run_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return run_dir


def _score_submission(files: dict[str, Path], relative: dict[str, str], hashes: dict[str, str], run_dir: Path,
                      pairs, manifest_obj, *, metrics: Sequence[str], dataset: str, split: str, name: str,
                      paper: str | None, pred_dir: Path, n_previews: int, workers: int | None, scheduler: str,
                      progress: bool) -> dict[str, Any]:
    """Copy the checked predictions into ``run_dir``, score them there and write ``per_image.parquet``; returns the
    run's result (:func:`submit_predictions` writes it)."""
    from isp_bench.evaluate.scoring import manifest_record, summarize_metrics, write_per_image
    from isp_bench.files import atomic_path
    from isp_bench.provenance import environment

    copies = {pair_id: run_dir / PREDICTIONS / relative[pair_id] for pair_id in files}
    for pair_id, path in files.items():  # the run keeps its own copy, so that it can be rescored
        with atomic_path(copies[pair_id]) as tmp:
            shutil.copyfile(path, tmp)
    eval_start = time.perf_counter()
    frame, unavailable = score_predictions(copies, pairs, metrics=metrics, previews_dir=run_dir / "previews",
                                           n_previews=n_previews, workers=workers, scheduler=scheduler,
                                           progress=progress)
    eval_seconds = time.perf_counter() - eval_start
    write_per_image(frame, run_dir / "per_image.parquet")
    return {
        "kind": "submitted",
        "model": name,
        "dataset": dataset,
        "split": split,
        "budget": None,
        "seed": None,
        "config": {"dataset": dataset, "eval": {"split": split, "truth": "target"}},
        "model_card": {"name": name, "paper": paper, "params": None, "macs_4032x3024": None},
        "manifest": manifest_record(manifest_obj, frame, pairs.left_out),
        "metrics": summarize_metrics(frame, [m for m in metrics if m not in unavailable]),
        "unavailable_metrics": unavailable,
        "training": None,
        "evaluation": {"seconds": eval_seconds, "frames": int(len(frame)), "s_per_frame": None,
                       "tile": None, "overlap": None, "predictions": PREDICTIONS},
        "submission": {"name": name, "paper": paper, "pred_dir": str(pred_dir), "files": hashes,
                       "geometry": TARGET_FILE},
        "provenance": {**environment(), "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")},
    }


def _write_json(path: Path, value: dict[str, Any]) -> None:
    from isp_bench.files import atomic_write_text

    atomic_write_text(path, json.dumps(value, indent=1, sort_keys=True, default=str) + "\n")


def rescore_run(
    run_dir: str | os.PathLike,
    metrics: Sequence[str],
    *,
    manifest: str | os.PathLike | None = None,
    root: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    workers: int | None = None,
    scheduler: str = "local",
    progress: bool = True,
) -> dict[str, Any]:
    """Score a finished run's saved predictions (``run_dir/predictions``) with ``metrics`` and add
    the new ones to its ``result.json`` and ``per_image.parquet`` (each rewritten atomically); the
    model is never loaded. Metrics the run already has are recomputed and must equal the stored
    values, which stay untouched. ``workers`` and ``scheduler``: where the pairs are scored
    (:func:`score_predictions`); ``cache_dir``: as for :func:`submit_predictions`. Returns
    ``{"added": {metric: summary}, "checked": [...], "unavailable": {...}}``.
    """
    import pandas as pd

    from isp_bench import __version__
    from isp_bench.evaluate.scoring import summarize_metrics, write_per_image
    from isp_bench.files import sha256_file
    from isp_bench.metrics import get_metric

    run_dir = Path(run_dir)
    result_path, per_image_path = run_dir / "result.json", run_dir / "per_image.parquet"
    if not result_path.is_file() or not per_image_path.is_file():
        raise SubmissionError(f"{run_dir}: no result.json and per_image.parquet; rescore a finished run "
                              "(`isp-bench evaluate` or `isp-bench submit` writes them)")
    if not (run_dir / PREDICTIONS).is_dir():
        raise SubmissionError(f"{run_dir}: the run kept no predictions, so it cannot be rescored without its model; "
                              "evaluate it again with --save-predictions")
    result = json.loads(result_path.read_text())
    manifest_obj, pairs = _split_dataset(result["dataset"], result["split"],
                                         manifest or result["manifest"]["path"], root, cache_dir,
                                         progress)
    if manifest_obj.content_hash != result["manifest"]["content_hash"]:
        raise SubmissionError(f"{manifest_obj.path}: content hash {manifest_obj.content_hash[:16]}… is not the run's "
                              f"{result['manifest']['content_hash'][:16]}…; pass the run's manifest with --manifest")
    names = list(dict.fromkeys(metrics or ()))
    if not names:
        raise SubmissionError(f"{run_dir}: name the metrics to add, e.g. --metrics ssim,lpips")
    for name in names:
        old = result["metrics"].get(name)
        if old is not None and old["spec"] != get_metric(name).to_dict():
            raise SubmissionError(f"{run_dir}: the run's {name} was scored with spec {old['spec']}, which differs "
                                  f"from today's {get_metric(name).to_dict()}; nothing was written")
    truth = result["config"]["eval"].get("truth", "target")
    # predictions as submitted, or as `evaluate` wrote them (and as submissions recorded before 2026-12 were made)
    in_target_files = (result.get("submission") or {}).get("geometry") == TARGET_FILE
    files = check_predictions(run_dir / PREDICTIONS, pairs, truth, target_file_geometry=in_target_files)
    # the hashes a submission recorded of its files, or an evaluation of the predictions it saved (since 2026-12)
    recorded = (result.get("submission") or {}).get("files") or result["evaluation"].get("prediction_files") or {}
    for path in files.values():
        rel = path.relative_to(run_dir / PREDICTIONS).as_posix()
        if rel in recorded and sha256_file(path) != recorded[rel]:
            raise SubmissionError(f"{path}: not the prediction the run recorded (its sha256 differs from the one in "
                                  "result.json); the run's predictions changed after it was scored, so nothing was "
                                  "written. Fix: restore the file, or submit the new predictions as a run of their own")
    fresh, unavailable = score_predictions(files, pairs, metrics=names, truth=truth,
                                           target_file_geometry=in_target_files, workers=workers,
                                           scheduler=scheduler, progress=progress)
    stored = pd.read_parquet(per_image_path)
    fresh = fresh.set_index("pair_id").loc[stored["pair_id"]].reset_index()
    checked = [n for n in names if n in stored.columns and n not in unavailable]
    for name in checked:
        a, b = stored[name].to_numpy(float), fresh[name].to_numpy(float)
        if not np.array_equal(a, b, equal_nan=True):
            bad = [pid for pid, x, y in zip(stored["pair_id"], a, b) if not (x == y or (np.isnan(x) and np.isnan(y)))]
            raise SubmissionError(f"{run_dir}: {name} of the saved predictions differs from the stored value for "
                                  f"{len(bad)} pair(s) (first: {bad[0]}); the predictions or the metric changed "
                                  "since the run; nothing was written")
    added = [n for n in names if n not in stored.columns and n not in unavailable]
    for name in added:
        stored[name] = fresh[name].to_numpy()
    summaries = summarize_metrics(stored, added)
    if added:
        result["metrics"].update(summaries)
        result["unavailable_metrics"] = {k: v for k, v in result.get("unavailable_metrics", {}).items()
                                         if k not in added}
        result.setdefault("rescored", []).append({
            "metrics": added, "isp_bench": __version__,
            "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
        write_per_image(stored, per_image_path)
        _write_json(result_path, result)
    return {"added": summaries, "checked": checked, "unavailable": unavailable}
