"""Process pools that are safe with rawpy/LibRaw's OpenMP build and torch: workers start from a
fork server, never by forking a process whose OpenMP runtime is already initialised."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor


def process_pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"))
