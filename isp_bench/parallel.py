"""Process pools that are safe with rawpy/LibRaw's OpenMP build and torch: workers start from a
fork server, never by forking a process whose OpenMP runtime is already initialised."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor


def process_pool(workers: int, preload: tuple[str, ...] = ()) -> ProcessPoolExecutor:
    """A pool whose workers fork from a server that has imported ``preload`` once (so each worker
    does not pay the import time again)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(preload))
    return ProcessPoolExecutor(workers, mp_context=context)
