"""Running one function over many items: in this process, in a local process pool, or on a Dask
cluster, behind one interface (:func:`executor`), so that no stage knows which backend runs it.

Backends (``scheduler``):

- ``"local"`` (the default): a process pool on this machine whose workers start from a fork server,
  never by forking a process whose OpenMP runtime (rawpy/LibRaw, torch) is already initialised;
  ``workers=1`` runs the items in this process instead (no start-up cost, no crash isolation).
- ``"dask"``: a ``dask.distributed`` LocalCluster of single-threaded worker processes sized to the
  machine (or to ``workers``).
- ``"tcp://HOST:PORT"``: an existing Dask scheduler (started by hand, by dask-jobqueue on SLURM/PBS,
  or by dask-kubernetes). Workers read files by the paths the stage gives them, so the dataset root
  must be on a file system every worker mounts at the same path.

Faults. A process that dies while running an item (LibRaw has segfaulted on crafted raws) is
replaced and the items that were in flight when it died run again, one at a time, so the culprit is
known (an item that merely shared the dead process with it costs nothing). An item that kills its
process ``max_tries`` times while running alone is yielded with a :class:`TaskLost` instead of a
result, and the run goes on. On Dask, a death reaches the client as ``KilledWorker`` once the
scheduler has seen ``distributed.scheduler.allowed-failures`` + 1 of them: 0 on the clusters started
here (so every death is counted here), the cluster's own setting (default 3) on a ``tcp://`` one.
An exception raised by the function itself ends the run.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Iterable, Iterator

from isp_bench.errors import IspBenchError

SCHEDULERS = ("local", "dask", "tcp://HOST:PORT")
DEFAULT_MAX_TRIES = 3
_WINDOW_PER_WORKER = 2  # items in flight per worker: keeps workers busy, bounds memory held by results


class SchedulerError(IspBenchError):
    """A ``--scheduler`` value names no backend, or its cluster cannot be reached."""


class TaskLost(IspBenchError):
    """The process running an item died every time it was tried (e.g. the decoder crashed on it)."""

    def __init__(self, item: Any, tries: int, backend: str):
        self.item, self.tries, self.backend = item, tries, backend
        super().__init__(f"the worker process running it died {tries} time(s) ({backend}); the input most likely "
                         "crashes its decoder (a corrupt or crafted file): inspect or replace it")


def process_pool(workers: int, preload: tuple[str, ...] = ()) -> ProcessPoolExecutor:
    """A pool whose workers fork from a server that has imported ``preload`` once (so each worker
    does not pay the import time again), and ignore SIGINT: a terminal's Ctrl-C reaches the whole process group,
    and a worker interrupted while it hands back a result dies holding the pool's queue lock, so that the parent's
    shutdown waits for ever (an ingest hung so, before it could save what it had done). The parent alone is
    interrupted; it cancels what has not started and waits for the items in flight."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(preload))
    return ProcessPoolExecutor(workers, mp_context=context, initializer=_ignore_interrupts)


def _ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def check_scheduler(scheduler: str) -> str:
    """``scheduler`` if it names a backend, else :class:`SchedulerError` listing the choices."""
    if scheduler in ("local", "dask") or scheduler.startswith("tcp://"):
        return scheduler
    raise SchedulerError(f"--scheduler {scheduler!r}: expected one of {', '.join(SCHEDULERS)}")


class Executor:
    """Runs ``fn`` over items; :meth:`map_unordered` yields ``(item, result)`` as each finishes."""

    workers: int
    backend: str

    def map_unordered(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        """``(item, fn(item))`` in completion order, or ``(item, TaskLost)`` for an item whose process
        died ``max_tries`` times. Items are submitted a few per worker at a time (``items`` may be a
        generator) and results are handed over as they arrive, so memory does not grow with the run."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class InProcessExecutor(Executor):
    """Runs the items one after another in this process."""

    workers, backend = 1, "in-process"

    def map_unordered(self, fn, items):
        for item in items:
            yield item, fn(item)


class _Feed:
    """What an executor submits next: a suspect alone once nothing else is in flight (so that a worker
    death names its culprit), else new items until ``window`` are in flight."""

    def __init__(self, items):
        self._queue = iter(items)
        self._exhausted = False
        self._again: deque[Any] = deque()  # items never submitted: the pool broke first
        self.suspects: deque[Any] = deque()  # items in flight when a worker died: rerun alone

    def due(self, in_flight: int, window: int) -> list[tuple[Any, bool]]:
        """``(item, runs alone)`` pairs to submit now."""
        if self.suspects:
            return [] if in_flight else [(self.suspects.popleft(), True)]
        due = []
        while in_flight + len(due) < window:
            if self._again:
                item = self._again.popleft()
            elif self._exhausted or (item := next(self._queue, _END)) is _END:
                self._exhausted = True
                break
            due.append((item, False))
        return due

    def put_back(self, due: list[tuple[Any, bool]]) -> None:
        """Pairs from :meth:`due` that could not be submitted, to be submitted first next time."""
        for item, alone in reversed(due):
            (self.suspects if alone else self._again).appendleft(item)


class LocalPoolExecutor(Executor):
    """A fork-server process pool that replaces itself when a worker dies (see the module notes)."""

    backend = "local process pool"

    def __init__(self, workers: int, preload: tuple[str, ...] = (), max_tries: int = DEFAULT_MAX_TRIES):
        self.workers, self.preload, self.max_tries = workers, preload, max_tries
        self._pool: ProcessPoolExecutor | None = None

    def _fresh_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = process_pool(self.workers, self.preload)
        return self._pool

    def _drop_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def map_unordered(self, fn, items):
        feed = _Feed(items)
        deaths: dict[int, int] = {}  # id(item) → deaths while running alone
        pending: dict[Future, Any] = {}
        window = self.workers * _WINDOW_PER_WORKER
        try:
            while True:
                pool = self._fresh_pool()
                due = feed.due(len(pending), window)
                submitted = 0
                try:
                    for item, _ in due:
                        pending[pool.submit(fn, item)] = item
                        submitted += 1
                except BrokenProcessPool:  # a worker died since the last wait: nothing more is accepted
                    feed.put_back(due[submitted:])
                    yield from self._after_death(pending, feed.suspects, deaths)
                    continue
                if not pending:
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                if any(isinstance(f.exception(), BrokenProcessPool) for f in done):
                    yield from self._after_death(pending, feed.suspects, deaths)
                    continue
                for future in done:
                    item = pending.pop(future)
                    yield item, future.result()
        finally:
            self._drop_pool()

    def _after_death(self, pending: dict[Future, Any], suspects: deque, deaths: dict[int, int]):
        """A worker died: finished items are yielded, the ones in flight become suspects (or, when only
        one was running, it is the culprit: counted, and reported once it reached ``max_tries``)."""
        lost = []
        for future, item in list(pending.items()):
            if future.done() and future.exception() is None:
                yield item, future.result()
            else:
                lost.append(item)
        pending.clear()
        self._drop_pool()
        for item in lost:
            if len(lost) == 1:
                deaths[id(item)] = deaths.get(id(item), 0) + 1
                if deaths[id(item)] >= self.max_tries:
                    yield item, TaskLost(item, deaths[id(item)], self.backend)
                    continue
            suspects.append(item)

    def close(self) -> None:
        self._drop_pool()


class DaskExecutor(Executor):
    """Items as tasks on a Dask cluster: a LocalCluster started here (``address=None``) or the
    scheduler at ``address``. A lost worker's tasks are rescheduled by Dask itself."""

    def __init__(self, address: str | None, workers: int | None = None, max_tries: int = DEFAULT_MAX_TRIES):
        import dask
        from distributed import Client, LocalCluster

        self.max_tries = max_tries
        self._cluster = None
        try:
            if address is None:
                # read by the scheduler when it starts (it runs in this process for a LocalCluster): each
                # death is reported at once (KilledWorker) and counted here, as on the local pool
                with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
                    self._cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                                                 processes=True, dashboard_address=None)
                self._client = Client(self._cluster)
                self.backend = f"dask LocalCluster {self._cluster.scheduler_address}"
            else:
                self._client = Client(address, timeout="30s")
                self.backend = f"dask cluster {address}"
        except OSError as exc:
            self.close()
            raise SchedulerError(f"--scheduler {address or 'dask'}: cannot reach the Dask scheduler ({exc}); start "
                                 "it first (e.g. `dask scheduler` and `dask worker ADDRESS`) or use --scheduler local")
        self.workers = max(1, sum(self._client.nthreads().values()))

    def map_unordered(self, fn, items):
        from distributed import KilledWorker, wait as wait_any

        feed = _Feed(items)
        deaths: dict[int, int] = {}  # id(item) → deaths while running alone
        pending: dict[Any, tuple[Any, bool]] = {}  # future → (item, ran alone)
        window = self.workers * _WINDOW_PER_WORKER
        try:
            while True:
                for item, alone in feed.due(len(pending), window):
                    pending[self._client.submit(fn, item, pure=False)] = (item, alone)
                if not pending:
                    return
                done = wait_any(list(pending), return_when="FIRST_COMPLETED").done
                for future in done:
                    item, alone = pending.pop(future)
                    try:
                        result = future.result()
                    except KilledWorker:
                        if alone:
                            deaths[id(item)] = deaths.get(id(item), 0) + 1
                        if alone and deaths[id(item)] >= self.max_tries:
                            result = TaskLost(item, deaths[id(item)], self.backend)
                        else:
                            feed.suspects.append(item)
                            continue
                    finally:
                        future.release()
                    yield item, result
        finally:
            for future in pending:
                future.cancel()

    def close(self) -> None:
        client, self._client = getattr(self, "_client", None), None
        if client is not None:
            client.close()
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None


def process_count(text: str) -> int:
    """argparse type of ``--workers`` and ``--nproc``: a whole number of processes, at least 1."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of processes, 1 or more")
    return int(text)


def add_scheduler_option(parser, what: str) -> None:
    """Add ``--scheduler`` to an argparse parser of a command whose ``what`` runs on the executor."""
    parser.add_argument("--scheduler", default="local", metavar="local|dask|tcp://HOST:PORT",
                        help=f"backend for {what}: local = a process pool on this machine, dask = a Dask LocalCluster "
                             "sized to this machine, tcp://HOST:PORT = an existing Dask cluster whose workers see the "
                             "same files at the same paths (default: %(default)s)")


def in_process_by_default(workers: int | None, scheduler: str) -> int | None:
    """``workers`` as given, but 1 (run in this process) when it is unset and ``scheduler`` is
    ``local``: for stages whose default is not to start a process pool."""
    return workers if workers is not None or scheduler != "local" else 1


def executor(scheduler: str = "local", workers: int | None = None, *, preload: tuple[str, ...] = (),
             max_tries: int = DEFAULT_MAX_TRIES) -> Executor:
    """The executor for ``scheduler`` (see the module notes); use it as a context manager.

    ``workers``: processes for ``local`` (default: CPUs; 1 runs in this process) and ``dask``
    (default: CPUs); ignored for ``tcp://`` (the cluster has its own). ``preload``: modules the local
    pool's workers import once. ``max_tries``: deaths after which an item is reported lost.
    """
    check_scheduler(scheduler)
    if scheduler == "local":
        workers = workers or os.cpu_count() or 1
        return InProcessExecutor() if workers == 1 else LocalPoolExecutor(workers, preload, max_tries)
    return DaskExecutor(None if scheduler == "dask" else scheduler, workers, max_tries)


_END = object()
