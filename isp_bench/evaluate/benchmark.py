"""Evaluate a model on a manifest split at full resolution: tiled inference, the metric suite per
image, and diagonal-split previews (output upper-left, ground truth lower-right, as the DeepISP and
CRISPnet figures show them)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from isp_bench.data import PairDataset
from isp_bench.evaluate.tiled import infer_full
from isp_bench.images import write_png
from isp_bench.manifest import Manifest
from isp_bench.metrics import DEFAULT_METRICS, get_metric
from isp_bench.metrics.score import score_pair


def diagonal_preview(output: np.ndarray, truth: np.ndarray, line: int = 2) -> np.ndarray:
    """H×W×3 uint8: ``output`` above the anti-diagonal, ``truth`` below, a white line between."""
    h, w = output.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    d = yy / h + xx / w - 1.0  # < 0 upper-left
    image = np.where((d < 0)[..., None], output, truth)
    image[np.abs(d) * min(h, w) < line / 2] = 1.0
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


def evaluate_model(
    model: torch.nn.Module,
    manifest: Manifest,
    root: Path,
    *,
    split: str = "test",
    metrics: Sequence[str] = DEFAULT_METRICS,
    tile: int = 512,
    overlap: int = 64,
    device: str = "cpu",
    cache_dir: Path | None = None,
    previews_dir: Path | None = None,
    n_previews: int = 4,
    progress: bool = True,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Score every pair of ``split``. Returns per-image rows (pair_id, role, subset, seconds and one
    column per metric) and the metrics that could not run, with the reason (e.g. missing weights)."""
    from tqdm import tqdm

    dataset = PairDataset(manifest, root, split, cache_dir=cache_dir, progress=False)
    for name in metrics:
        get_metric(name)  # unknown names fail before any inference
    unavailable: dict[str, str] = {}
    rows = []
    model.to(device).eval()
    for i in tqdm(range(len(dataset)), desc=f"evaluate {split}", unit="frame", disable=not progress):
        sample = dataset[i]
        batch = {k: (v[None].to(device) if isinstance(v, torch.Tensor) else v) for k, v in sample.items()
                 if k not in ("target", "linear_target", "pair_id")}
        start = time.perf_counter()
        output = infer_full(model, batch, tile=tile, overlap=overlap)[0].permute(1, 2, 0).cpu().double().numpy()
        seconds = time.perf_counter() - start
        output = np.clip(output, 0.0, 1.0)
        truth = sample["target"].permute(1, 2, 0).double().numpy()
        row: dict[str, Any] = {"pair_id": sample["pair_id"], "role": dataset.rows[i]["role"],
                               "subset": dataset.rows[i]["subset"], "seconds": seconds}
        row.update(score_pair(output, truth, [m for m in metrics if m not in unavailable], unavailable=unavailable))
        rows.append(row)
        if previews_dir is not None and i < n_previews:
            write_png(previews_dir / f"{sample['pair_id'].replace('/', '__')}.png", diagonal_preview(output, truth))
    frame = pd.DataFrame(rows)
    return frame.drop(columns=[m for m in unavailable if m in frame.columns]), unavailable
