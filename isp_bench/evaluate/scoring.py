"""Scoring a model on a manifest split at full resolution: tiled inference, the metric suite per
image, diagonal-split previews (output upper-left, ground truth lower-right, as the DeepISP and
CRISPnet figures show them) and the predictions themselves. The whole train-evaluate-record run
(``isp-bench run``) is :func:`isp_bench.runs.run_benchmark`; ``benchmarks/`` holds timing scripts.

Predictions layout (shared by ``evaluate``, ``isp-bench submit`` and ``isp-bench rescore``): one
16-bit RGB PNG per pair, at ``<folder>/<pair_id>.png`` (a pair id's ``/`` makes sub-folders), the
size of the pair's target after the pair handling (CFA-phase crop, target rotation). Every
prediction is scored as its 16-bit file holds it (clipped to [0, 1], rounded to 1/65535), so a
rescore of the saved files reproduces a run's values exactly.

Under torchrun the frames are sharded over the ranks (rank r renders and scores frames r, r+W, …, and
writes their previews and predictions); every rank gets all the per-image rows, in split order.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch

from isp_bench import distributed
from isp_bench.data import PairDataset
from isp_bench.data.dataset import TARGET_SCALE
from isp_bench.devices import memory_format, to_device
from isp_bench.errors import IspBenchError
from isp_bench.evaluate.tiled import infer_full
from isp_bench.files import atomic_path
from isp_bench.images import write_png
from isp_bench.manifest import Manifest
from isp_bench.metrics import DEFAULT_METRICS, get_metric
from isp_bench.metrics.score import score_pair

#: A split of at most this many pairs is "small": ``evaluate`` saves its test-split predictions by default.
SMALL_SPLIT_PAIRS = 200


def diagonal_preview(output: np.ndarray, truth: np.ndarray, line: int = 2) -> np.ndarray:
    """H×W×3 uint8: ``output`` above the anti-diagonal, ``truth`` below, a white line between."""
    h, w = output.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    d = yy / h + xx / w - 1.0  # < 0 upper-left
    image = np.where((d < 0)[..., None], output, truth)
    image[np.abs(d) * min(h, w) < line / 2] = 1.0
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


def prediction_path(folder: Path, pair_id: str) -> Path:
    """Where the 16-bit PNG prediction of ``pair_id`` lives in a predictions folder."""
    return Path(folder) / f"{pair_id}.png"


def previewed_pairs(n_pairs: int, n_previews: int) -> set[int]:
    """Indices of the pairs that get a preview: ``n_previews`` spread evenly over the split (its first and
    last pair included), so they show several scenes rather than the first scene's frames.

    >>> sorted(previewed_pairs(8, 4)), sorted(previewed_pairs(3, 4)), previewed_pairs(5, 1), previewed_pairs(5, 0)
    ([0, 2, 5, 7], [0, 1, 2], {0}, set())
    """
    if n_previews >= n_pairs:
        return set(range(n_pairs))
    if n_previews <= 1:
        return set(range(n_previews))
    return {round(k * (n_pairs - 1) / (n_previews - 1)) for k in range(n_previews)}


def save_predictions_by_default(split: str, n_pairs: int) -> bool:
    """Predictions are kept by default for the test split of a small split (≤ :data:`SMALL_SPLIT_PAIRS`)."""
    return split == "test" and n_pairs <= SMALL_SPLIT_PAIRS


def as_16bit(image: np.ndarray) -> np.ndarray:
    """H×W×3 float in [0, 1] (values outside are clipped) → uint16, the precision every prediction is scored at."""
    return np.round(np.clip(image, 0.0, 1.0) * 65535.0).astype(np.uint16)


#: ``predict(index, sample) -> (H×W×3 sRGB in [0, 1], seconds or None)`` for the pair at ``index``.
Predictor = Callable[[int, dict[str, Any]], tuple[np.ndarray, float | None]]


def score_split(
    predict: Predictor,
    dataset: PairDataset,
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    truth: str = "target",
    previews_dir: Path | None = None,
    n_previews: int = 4,
    predictions_dir: Path | None = None,
    progress: bool = True,
    desc: str = "score",
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Score ``predict``'s output for every pair of ``dataset`` against the pair's ``truth``
    (``target``: display sRGB; ``linear_target``: linear RGB).

    Returns per-image rows (pair_id, role, subset, seconds and one column per metric) and the
    metrics that could not run, with the reason (e.g. missing weights). With ``predictions_dir``
    each prediction is written there as a 16-bit PNG (:func:`prediction_path`). With several
    processes (torchrun) each scores its share of the pairs and the rows are gathered on every rank.
    """
    from tqdm import tqdm

    for name in metrics:
        get_metric(name)  # unknown names fail before any inference
    unavailable: dict[str, str] = {}
    rows = []
    share = range(distributed.rank(), len(dataset), distributed.world_size())
    previewed = previewed_pairs(len(dataset), n_previews)
    for i in tqdm(share, desc=desc, unit="frame", disable=not progress):
        truth_image = pair_truth(dataset.cache, dataset.rows[i], truth)  # before any inference
        sample = dataset[i]
        output, seconds = predict(i, sample)
        row, stored = score_output(i, dataset.rows[i], output, seconds, truth_image, metrics=metrics,
                                   unavailable=unavailable, previews_dir=previews_dir, preview=i in previewed)
        rows.append(row)
        if predictions_dir is not None:
            write_png(prediction_path(predictions_dir, sample["pair_id"]), stored)
    shares = distributed.gather((rows, unavailable))  # every rank's rows: [(rows, unavailable)] in one process
    for _, part in shares:
        unavailable.update(part)
    return _per_image([row for part, _ in shares for row in part], unavailable), unavailable


def score_files(
    files: Sequence[Path],
    dataset: PairDataset,
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    truth: str = "target",
    previews_dir: Path | None = None,
    n_previews: int = 4,
    workers: int | None = None,
    scheduler: str = "local",
    progress: bool = True,
    desc: str = "score predictions",
    target_file_geometry: bool = False,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """:func:`score_split` for predictions already on disk: ``files[i]`` is the prediction of pair
    ``i`` of ``dataset``, in the cache's geometry (as :func:`evaluate_model` writes them), or with
    ``target_file_geometry`` in that of the pair's target file, which is brought into the cache's first
    (:func:`isp_bench.data.cache.cache_geometry`). Each pair is a task on ``scheduler``'s backend
    (:func:`isp_bench.parallel.executor`; ``local`` scores in this process unless ``workers`` > 1),
    which reads its file and its truth from the preprocessing cache (so the workers must see the
    files and the cache folder); the rows are put back in split order, so the frame is the same
    whichever backend and however many workers scored it."""
    from functools import partial

    from tqdm import tqdm

    from isp_bench.metrics.score import ScoreError
    from isp_bench.parallel import TaskLost, executor, in_process_by_default

    for name in metrics:
        get_metric(name)
    task = partial(_score_file, cache=dataset.cache, truth=truth, metrics=tuple(metrics),
                   previews_dir=previews_dir, target_file_geometry=target_file_geometry)
    rows, unavailable = [], {}
    previewed = previewed_pairs(len(dataset.rows), n_previews)
    jobs = [(i, row, Path(path), i in previewed) for i, (row, path) in enumerate(zip(dataset.rows, files, strict=True))]
    with executor(scheduler, in_process_by_default(workers, scheduler),
                  preload=("isp_bench.evaluate.scoring",)) as ex:
        for (_, _, path, _), outcome in tqdm(ex.map_unordered(task, jobs), total=len(jobs), desc=desc, unit="frame",
                                          disable=not progress):
            if isinstance(outcome, TaskLost):
                raise ScoreError(f"{path}: {outcome}")
            rows.append(outcome[0])
            unavailable.update(outcome[1])
    return _per_image(rows, unavailable), unavailable


def _score_file(job: tuple[int, dict[str, Any], Path, bool], *, cache, truth: str, metrics: tuple[str, ...],
                previews_dir: Path | None, target_file_geometry: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """One task of :func:`score_files`: the row of pair ``index`` scored from its prediction file (and
    previewed if ``preview``), and the metrics it could not run."""
    from isp_bench.data.cache import cache_geometry
    from isp_bench.metrics.score import read_srgb

    index, row, path, preview = job
    unavailable: dict[str, str] = {}
    output = read_srgb(path)
    if target_file_geometry:
        output = cache_geometry(output, row)
    scored, _ = score_output(index, row, output, None, pair_truth(cache, row, truth), metrics=metrics,
                             unavailable=unavailable, previews_dir=previews_dir, preview=preview)
    return scored, unavailable


def pair_truth(cache, row: dict[str, Any], truth: str) -> np.ndarray:
    """H×W×3 float64: the pair's cached ``truth`` image exactly as :class:`PairDataset` hands it over
    (16-bit codes / 65535 in float32)."""
    array = getattr(cache.load(row), truth)
    if array is None:
        raise IspBenchError(f"{cache.root}: pair {row['pair_id']} has no {truth} to score against (a linear target "
                            "needs the raw's white balance and colour matrix and a pair that is not a short "
                            "exposure); score this dataset against its display target")
    return np.divide(array, TARGET_SCALE, dtype=np.float32).transpose(1, 2, 0).astype(np.float64)


def score_output(index: int, row: dict[str, Any], output: np.ndarray, seconds: float | None,
                 truth_image: np.ndarray, *, metrics: Sequence[str], unavailable: dict[str, str],
                 previews_dir: Path | None, preview: bool) -> tuple[dict[str, Any], np.ndarray]:
    """The per-image row of pair ``index`` (its manifest ``row``): ``output`` (H×W×3 in [0, 1]) scored
    as its 16-bit file holds it (:func:`as_16bit`) against ``truth_image``, metrics in ``unavailable``
    skipped (and ones found without weights added there); its diagonal preview written to ``previews_dir``
    if ``preview``. Returns the row and the 16-bit prediction."""
    stored = as_16bit(output)
    output = stored / 65535.0
    scored: dict[str, Any] = {"index": index, "pair_id": row["pair_id"], "role": row["role"],
                              "subset": row["subset"], "seconds": seconds}
    scored.update(score_pair(output, truth_image, [m for m in metrics if m not in unavailable],
                             unavailable=unavailable))
    if previews_dir is not None and preview:
        write_png(previews_dir / f"{row['pair_id'].replace('/', '__')}.png", diagonal_preview(output, truth_image))
    return scored, stored


def _per_image(rows: list[dict[str, Any]], unavailable: dict[str, str]) -> pd.DataFrame:
    """The rows in split order, without their index and without the columns of unavailable metrics."""
    frame = pd.DataFrame(sorted(rows, key=lambda row: row["index"])).drop(columns="index", errors="ignore")
    return frame.drop(columns=[m for m in unavailable if m in frame.columns])


def evaluate_model(
    model: torch.nn.Module,
    manifest: Manifest,
    root: Path,
    *,
    split: str = "test",
    metrics: Sequence[str] = DEFAULT_METRICS,
    truth: str = "target",
    tile: int = 512,
    overlap: int = 64,
    device: str = "cpu",
    precision: str = "fp32",
    tile_batch: int = 8,
    cache_dir: Path | None = None,
    previews_dir: Path | None = None,
    n_previews: int = 4,
    predictions_dir: Path | None = None,
    scheduler: str = "local",
    progress: bool = True,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Render every pair of ``split`` with ``model`` (tiled, full resolution) and score it
    (:func:`score_split`; ``seconds`` is the inference time per frame) in ``precision``, ``tile_batch``
    tiles per forward pass (:func:`~isp_bench.evaluate.tiled.infer_full`). Pairs missing from the
    preprocessing cache are preprocessed on ``scheduler`` (:func:`isp_bench.parallel.executor`); pairs whose
    target cannot be aligned are left out (``frame.attrs["left_out"]``: pair id → flag, see
    :class:`~isp_bench.data.PairDataset`)."""
    dataset = PairDataset(manifest, root, split, cache_dir=cache_dir, build_scheduler=scheduler, progress=False)
    model.to(device, memory_format=memory_format(device)).eval()

    def predict(_: int, sample: dict[str, Any]) -> tuple[np.ndarray, float]:
        batch = to_device({k: (v[None] if isinstance(v, torch.Tensor) else v) for k, v in sample.items()
                           if k not in ("target", "linear_target", "pair_id")}, device)
        start = time.perf_counter()
        output = infer_full(model, batch, tile=tile, overlap=overlap, precision=precision, tile_batch=tile_batch)
        output = output[0].permute(1, 2, 0).cpu().double().numpy()
        return output, time.perf_counter() - start

    frame, unavailable = score_split(predict, dataset, metrics=metrics, truth=truth, previews_dir=previews_dir,
                                     n_previews=n_previews, predictions_dir=predictions_dir, progress=progress,
                                     desc=f"evaluate {split}")
    frame.attrs["left_out"] = dataset.left_out
    return frame, unavailable


def summarize_metrics(frame: pd.DataFrame, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``{metric: {spec, mean, median, std, n}}`` over the per-image rows, as result.json records it."""
    out = {}
    for name in names:
        values = frame[name].to_numpy(dtype=float)
        out[name] = {"spec": get_metric(name).to_dict(), "mean": float(np.mean(values)),
                     "median": float(np.median(values)), "std": float(np.std(values)), "n": int(values.size)}
    return out


def manifest_record(manifest: Manifest, frame: pd.DataFrame, left_out: dict[str, str]) -> dict[str, Any]:
    """result.json's ``manifest`` entry: the manifest scored, the pairs scored and, when some of the split's pairs
    were left out (targets that cannot be aligned, :class:`~isp_bench.data.PairDataset`), which and why."""
    return {"path": str(manifest.path), "dataset": manifest.dataset, "content_hash": manifest.content_hash,
            "pairs_in_split": int(len(frame)), **({"pairs_left_out": dict(left_out)} if left_out else {})}


def means_heading(result: dict[str, Any]) -> str:
    """The console line above a run's metric means: over how many pairs of which split, and how many were left out."""
    left_out = result["manifest"].get("pairs_left_out", {})
    why = f" ({len(left_out)} left out, without a target that can be laid on the raw)" if left_out else ""
    return f"  means over the {result['manifest']['pairs_in_split']} pairs of the {result['split']} split{why}:"


def write_per_image(frame: pd.DataFrame, path: Path) -> Path:
    """Write the per-image scores to Parquet atomically."""
    with atomic_path(path, suffix=".parquet") as tmp:
        frame.to_parquet(tmp, index=False)
    return Path(path)
