"""Mutation fuzzing of :func:`isp_bench.raw.read_raw`.

Seeded corruptions of real raw containers (byte flips, header flips, truncations, duplicated and
zeroed chunks) are each read in a worker process under a memory limit (``RLIMIT_AS``) and a
per-file timeout. ``read_raw`` must return a RawCapture or raise from the IspBenchError family;
anything else is an *escape*, a worker killed by a signal is a *crash*, one past the timeout a
*hang*. A worker that crashed or hung is replaced and the run goes on.

File ``index`` is fully determined by ``(seed, index)`` and the list of sources: source
``index % len(sources)``, mutation ``MUTATIONS[(index // len(sources)) % len(MUTATIONS)]`` (so every
container meets every mutation), mutation parameters from ``numpy.random.default_rng([seed, index])``;
:func:`mutated_file` rebuilds any reported file.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import tempfile
import threading
import time
import traceback
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

MUTATIONS = ("byte_flips", "header_flips", "truncation", "duplicate_chunk", "zero_chunk")
HEADER_BYTES = 1024  # TIFF/CIFF/ISO-BMFF headers and the first IFD live in the first kilobyte
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MEMORY_MB = 4096
FAILURES = ("escape", "crash", "hang")


def mutate(data: bytes, kind: str, rng: np.random.Generator) -> bytes:
    """One seeded corruption of ``data``.

    - ``byte_flips``: 1-16 bytes anywhere XOR-ed with a random non-zero byte;
    - ``header_flips``: 1-8 bytes of the first :data:`HEADER_BYTES` XOR-ed;
    - ``truncation``: the file cut at a uniform length in [0, len);
    - ``duplicate_chunk``: a chunk of 1 B-4 kB copied and inserted at another offset;
    - ``zero_chunk``: a chunk of 1 B-4 kB overwritten with zeros.
    """
    buf = bytearray(data)
    n = len(buf)
    if n == 0:
        return bytes(buf)
    if kind in ("byte_flips", "header_flips"):
        span = n if kind == "byte_flips" else min(n, HEADER_BYTES)
        count = int(rng.integers(1, 17 if kind == "byte_flips" else 9))
        for pos in rng.integers(0, span, size=count):
            buf[int(pos)] ^= int(rng.integers(1, 256))
    elif kind == "truncation":
        del buf[int(rng.integers(0, n)):]
    elif kind in ("duplicate_chunk", "zero_chunk"):
        length = int(rng.integers(1, min(n, 4096) + 1))
        start = int(rng.integers(0, n - length + 1))
        if kind == "zero_chunk":
            buf[start:start + length] = bytes(length)
        else:
            at = int(rng.integers(0, n + 1))
            buf[at:at] = buf[start:start + length]
    else:
        raise ValueError(f"unknown mutation {kind!r}; choose one of {MUTATIONS}")
    return bytes(buf)


def plan(sources: Sequence[Path], index: int) -> tuple[Path, str]:
    """The (source file, mutation) of fuzz file ``index``."""
    return sources[index % len(sources)], MUTATIONS[(index // len(sources)) % len(MUTATIONS)]


def mutated_file(sources: Sequence[Path], seed: int, index: int, folder: Path) -> Path:
    """Write fuzz file ``index`` into ``folder`` (its source's name and suffix kept) and return its path."""
    source, kind = plan(sources, index)
    data = mutate(source.read_bytes(), kind, np.random.default_rng([seed, index]))
    path = folder / f"{index:06d}-{kind}-{source.name}"
    path.write_bytes(data)
    return path


@dataclass
class Outcome:
    """What reading one fuzz file did: ``status`` is ok, refused (an IspBenchError), escape, crash or hang."""

    index: int
    source: str
    mutation: str
    status: str
    error: str | None = None  # exception class, or the signal that killed the worker
    message: str = ""
    seconds: float = 0.0


def _worker(conn, memory_mb: int) -> None:
    """Worker loop: read each path sent, answer (status, error class, message)."""
    limit = memory_mb << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # what read_raw passes on (LibRaw's warnings on files it still reads) and crash noise
    import logging

    logging.disable(logging.CRITICAL)  # exifread logs every unrecognised file
    from isp_bench.errors import IspBenchError
    from isp_bench.raw.read import read_raw

    while True:
        path = conn.recv()
        if path is None:
            return
        try:
            read_raw(path)
            answer = ("ok", None, "")
        except IspBenchError as exc:
            answer = ("refused", type(exc).__name__, str(exc)[:500])
        except BaseException as exc:  # noqa: BLE001 - exactly what the fuzzer looks for
            answer = ("escape", type(exc).__name__, traceback.format_exc()[-3000:])
        conn.send(answer)


class _WorkerSlot:
    """One worker process; replaced after a crash or a hang."""

    def __init__(self, ctx, memory_mb: int):
        self.ctx, self.memory_mb = ctx, memory_mb
        self.process = None
        self.restarts = 0

    def _start(self) -> None:
        self.conn, child = self.ctx.Pipe()
        self.process = self.ctx.Process(target=_worker, args=(child, self.memory_mb), daemon=True)
        self.process.start()
        child.close()

    def _kill(self) -> None:
        self.process.kill()
        self.process.join()
        self.conn.close()
        self.process = None
        self.restarts += 1

    def read(self, path: Path, timeout_s: float) -> tuple[str, str | None, str]:
        if self.process is None:
            self._start()
        self.conn.send(str(path))
        if self.conn.poll(timeout_s):
            try:
                return self.conn.recv()
            except EOFError:  # the worker died (its end of the pipe closed)
                self.process.join(timeout_s)
        if self.process.is_alive():
            self._kill()
            return "hang", None, f"no answer within {timeout_s:g} s"
        self.process.join()
        code = self.process.exitcode
        self._kill()
        return "crash", f"signal {-code}" if code and code < 0 else f"exit {code}", "the worker process died"

    def close(self) -> None:
        if self.process is not None:
            self.conn.send(None)
            self.process.join(5)
            if self.process.is_alive():
                self.process.kill()


@dataclass
class FuzzReport:
    """Every outcome plus the run's figures."""

    seed: int
    files: int
    seconds: float
    workers: int
    timeout_s: float
    memory_mb: int
    worker_restarts: int
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status in FAILURES]

    def summary(self) -> dict:
        by_status = Counter(o.status for o in self.outcomes)
        errors = Counter(o.error for o in self.outcomes if o.status == "refused")
        return {
            "seed": self.seed, "files": self.files, "seconds": round(self.seconds, 2),
            "files_per_s": round(self.files / self.seconds, 1) if self.seconds else None,
            "workers": self.workers, "timeout_s": self.timeout_s, "memory_mb": self.memory_mb,
            "ok": by_status["ok"], "refused": by_status["refused"], "escapes": by_status["escape"],
            "crashes": by_status["crash"], "hangs": by_status["hang"], "worker_restarts": self.worker_restarts,
            "refused_by_error": dict(sorted(errors.items())),
            "max_file_seconds": round(max((o.seconds for o in self.outcomes), default=0.0), 3),
        }

    def to_dict(self) -> dict:
        return {**self.summary(), "failures": [asdict(o) for o in self.failures]}


def fuzz_read_raw(
    sources: Sequence[Path],
    files: int,
    *,
    seed: int = 0,
    workers: int = 1,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
    progress: Callable[[int], None] | None = None,
) -> FuzzReport:
    """Read ``files`` mutated copies of ``sources`` with ``read_raw`` in ``workers`` worker processes.

    Parameters
    ----------
    sources : the raw files to mutate (sorted by the caller for a reproducible plan).
    files : how many mutated files to read (indices ``0 .. files-1``).
    seed : seeds every mutation (see the module docstring).
    timeout_s : seconds one file may take before its worker is killed (a hang).
    memory_mb : address-space limit of each worker (``RLIMIT_AS``), in MiB.
    progress : called with the number of files done after each file.
    """
    sources = [Path(s) for s in sources]
    if not sources:
        raise ValueError("no source files to mutate")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["isp_bench.raw.read"])
    slots = [_WorkerSlot(ctx, memory_mb) for _ in range(max(1, workers))]
    free = list(slots)
    lock = threading.Lock()
    done = 0

    def one(index: int) -> Outcome:
        nonlocal done
        with lock:
            slot = free.pop()
        try:
            path = mutated_file(sources, seed, index, folder)
            source, kind = plan(sources, index)
            start = time.perf_counter()
            status, error, message = slot.read(path, timeout_s)
            seconds = time.perf_counter() - start
            path.unlink()
        finally:
            with lock:
                free.append(slot)
        with lock:
            done += 1
            if progress:
                progress(done)
        return Outcome(index, source.name, kind, status, error, message, round(seconds, 4))

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="isp-bench-fuzz-") as tmp:
        folder = Path(tmp)
        try:
            with ThreadPoolExecutor(len(slots)) as pool:
                outcomes = list(pool.map(one, range(files)))
        finally:
            for slot in slots:
                slot.close()
    return FuzzReport(seed, files, time.perf_counter() - start, len(slots), timeout_s, memory_mb,
                      sum(s.restarts for s in slots), outcomes)


def sample_sources(raw_samples: Path) -> list[Path]:
    """Every container in a raw-samples folder (``valid/`` and ``broken/``), sorted."""
    return sorted(p for p in Path(raw_samples).glob("*/*") if p.is_file() and p.suffix.lower() != ".md")
