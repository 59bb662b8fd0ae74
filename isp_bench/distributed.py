"""Training and evaluation over several processes: torchrun, DistributedDataParallel, one writer.

Launch with ``torchrun --nproc_per_node N -m isp_bench run|train ...`` (one node), add ``--nnodes M
--rdzv-backend c10d --rdzv-endpoint HOST:PORT`` on every node for several (torchrun's c10d
rendezvous), or use ``isp-bench run --nproc N`` (:func:`launch`, one node). Every process runs the
same command; torchrun tells each its ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` in the environment,
and :func:`process_group` joins them (NCCL between GPUs, Gloo on CPUs).

What each rank does:

- training: the recipe's ``batch_size`` is the global batch; rank ``r`` of ``W`` draws items
  ``s·B + r·B/W … s·B + (r+1)·B/W − 1`` of step ``s`` (:func:`rank_items`), so the union over ranks is
  the single-process batch, and DistributedDataParallel averages the gradients. The position is the
  global step, so a checkpoint resumes with any world size.
- rank 0 alone writes the checkpoint, ``training.json``, ``model.pt``, ``config.json``,
  ``result.json``, ``per_image.parquet`` and the leaderboards; each rank writes the previews and
  predictions of the frames it rendered.
- evaluation: rank ``r`` renders and scores test frames ``r, r+W, …``; the per-image scores are
  gathered (:func:`gather`) before they are aggregated.

Nothing assumes one host except paths: the run folder, the dataset root and its cache must be the
same shared folder on every node.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from typing import Any, Iterator, Sequence

from isp_bench.errors import IspBenchError


class DistributedError(IspBenchError):
    """A multi-process setup that cannot work (e.g. a global batch that does not split over the ranks)."""


def _dist():
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def world_size() -> int:
    """Processes in the job: the process group's size, else torchrun's ``WORLD_SIZE``, else 1."""
    dist = _dist()
    return dist.get_world_size() if dist else int(os.environ.get("WORLD_SIZE", 1))


def rank() -> int:
    """This process's rank: the process group's, else torchrun's ``RANK``, else 0."""
    dist = _dist()
    return dist.get_rank() if dist else int(os.environ.get("RANK", 0))


def is_main() -> bool:
    """Rank 0: the process that writes the run's files."""
    return rank() == 0


def local_world_size() -> int:
    """Processes of this job on this machine (torchrun's ``LOCAL_WORLD_SIZE``; 1 outside torchrun)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1"))


def local_device(device: str) -> str:
    """Under torchrun on CUDA, ``auto`` and ``cuda`` mean this process's GPU (``LOCAL_RANK``): select it
    before :func:`isp_bench.devices.resolve_device` resolves ``device``. Returns ``device`` unchanged."""
    import torch

    if "LOCAL_RANK" in os.environ and str(device).strip().lower() in ("auto", "cuda") and torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]) % torch.cuda.device_count())
    return device


@contextlib.contextmanager
def process_group(device: str) -> Iterator[None]:
    """Join torchrun's process group for the duration (``device``: the resolved device; NCCL for CUDA,
    Gloo otherwise); nothing happens in a single process or when a group already exists. On leaving
    normally, every rank waits for the others (so rank 0's files exist for all), then the group closes."""
    import torch
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", 1)) <= 1 or _dist() is not None:
        yield
        return
    dist.init_process_group("nccl" if torch.device(device).type == "cuda" else "gloo",
                            device_id=torch.device(device) if torch.device(device).type == "cuda" else None)
    try:
        yield
        dist.barrier()
    finally:
        dist.destroy_process_group()


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (e.g. writes a shared file), the other ranks after it."""
    dist = _dist()
    if dist is not None and not is_main():
        dist.barrier()
    yield
    if dist is not None and is_main():
        dist.barrier()


def split_batch(global_batch: int, where: str) -> int:
    """The per-rank batch of a global batch; raises unless the ranks get equal shares (so that the
    average of their gradients is the gradient of the global batch)."""
    size = world_size()
    if global_batch % size:
        raise DistributedError(f"{where}: the global batch_size {global_batch} does not split over {size} processes; "
                               f"use a process count that divides it")
    return global_batch // size


def rank_items(first_step: int, steps: int, global_batch: int) -> list[int]:
    """The item indices this rank draws for steps ``first_step … steps-1`` (per-rank batches in step
    order): step ``s`` of the global index space holds items ``s·B … (s+1)·B − 1``, and rank ``r`` takes
    the ``r``-th of ``W`` equal consecutive shares."""
    share = global_batch // world_size()
    offset = rank() * share
    return [s * global_batch + offset + j for s in range(first_step, steps) for j in range(share)]


def mean(value: float) -> float:
    """The mean of ``value`` over the ranks (``value`` itself in a single process)."""
    dist = _dist()
    if dist is None:
        return value
    import torch

    backend_device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    total = torch.tensor([value], dtype=torch.float64, device=backend_device)
    dist.all_reduce(total)
    return float(total.item()) / dist.get_world_size()


def gather(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank (``[obj]`` in a single process)."""
    dist = _dist()
    if dist is None:
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def wrap(module, device: str):
    """``module`` inside DistributedDataParallel when several processes train (on this rank's GPU for
    CUDA), else ``module`` itself. Build it after choosing the stage's trainable parameters: DDP
    averages the gradients of the parameters that require them when it is built. ``static_graph``: the
    same parameters take part in every step, though not necessarily all that require gradients (PyNET's
    stages train levels their loss does not reach), which DDP then handles without searching the graph
    each step."""
    if _dist() is None:
        return module
    import torch
    from torch.nn.parallel import DistributedDataParallel

    ids = [torch.device(device)] if torch.device(device).type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, static_graph=True)


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run ``python -m isp_bench ARGV`` in ``nproc`` processes on this machine with torchrun
    (``python -m torch.distributed.run --standalone``); returns its exit status.

    Stopping: torchrun runs its workers in sessions of their own and stops them itself when it is
    interrupted or terminated, so this launcher never kills it. A Ctrl-C reaches torchrun with the
    terminal's process group, and a SIGTERM sent to this launcher is passed on to it; the launcher then
    waits until torchrun has stopped every worker, so that none trains on unseen."""
    import signal

    if nproc < 1:
        raise DistributedError(f"--nproc {nproc}: give 1 or more processes")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "isp_bench", *argv]
    torchrun = subprocess.Popen(command)
    previous = signal.signal(signal.SIGTERM, lambda *_: torchrun.send_signal(signal.SIGTERM))
    try:
        while True:
            try:
                return torchrun.wait()
            except KeyboardInterrupt:  # torchrun has the Ctrl-C too: let it stop its workers
                continue
    finally:
        signal.signal(signal.SIGTERM, previous)
