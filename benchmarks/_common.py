"""Helpers shared by the benchmark scripts: provenance and saving results."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from isp_bench.files import atomic_write_text
from isp_bench.provenance import environment

RESULTS = Path(__file__).resolve().parent / "results"


def provenance(packages: tuple[str, ...] = ("isp-bench", "numpy", "rawpy", "exifread", "tifffile", "pyarrow"),
               **extra) -> dict:
    return {**environment(packages), **extra}


def add_synth_options(parser) -> None:
    """--scenes/--height/--width of the synthetic set a benchmark generates (default: the embedded set)."""
    parser.add_argument("--scenes", type=int, default=24)
    parser.add_argument("--height", type=int, default=384)
    parser.add_argument("--width", type=int, default=512)


def sync(device) -> None:
    """Wait for the work queued on ``device`` (a name or torch.device) so that a timer measures it:
    CUDA runs asynchronously; elsewhere this does nothing."""
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """Minimum wall-clock seconds of ``repeats`` calls (the least disturbed run)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def save(name: str, payload: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    atomic_write_text(path, json.dumps(payload, indent=1) + "\n")
    return path
