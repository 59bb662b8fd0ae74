"""Compute devices and numeric precision: what ``--device`` and ``--precision`` accept, what ``auto``
picks, how a device is set up for speed, and what a run records.

``--device`` takes ``auto`` (the default of ``run``, ``train`` and ``evaluate``), ``cpu``, ``cuda``,
``cuda:N`` or ``mps``. ``auto`` is the first of: CUDA when torch sees a GPU, Apple's Metal backend
(``mps``) where this torch build has it, the CPU. A device this machine lacks, or a name torch does not
use, is a :class:`DeviceError` whose one line lists the devices this machine has.

``--precision`` takes ``auto`` (the default), ``fp32``, ``bf16`` or ``fp16``: see
:func:`resolve_precision`. Mixed precision runs the forward pass under :func:`torch.autocast` with
the chosen 16-bit type (weights and optimiser state stay fp32); fp16 also scales the loss
(:class:`torch.amp.GradScaler`) so that small gradients do not underflow.

torch is imported inside the functions, so importing this module costs nothing.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import warnings
from functools import lru_cache
from typing import Any

from isp_bench.errors import IspBenchError, IspBenchWarning

DEVICE_NAMES = "auto, cpu, cuda, cuda:N, mps"  # what --device accepts, for help texts and errors
PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # what --precision accepts
_CUDA = re.compile(r"^cuda(?::(\d+))?$")


class DeviceError(IspBenchError, ValueError):
    """A ``--device`` that is unknown or not present on this machine."""


def _mps_available(torch) -> bool:
    mps = getattr(torch.backends, "mps", None)  # absent from torch builds before 1.12
    return bool(mps is not None and mps.is_available())


def available_devices() -> list[str]:
    """The devices this machine has, as torch names them: ``cuda:0`` … ``cuda:N-1``, ``mps``, ``cpu``."""
    import torch

    cuda = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return cuda + (["mps"] if _mps_available(torch) else []) + ["cpu"]


def resolve_device(name: str = "auto") -> str:
    """The torch device string that ``name`` means on this machine.

    ``auto`` → ``cuda:K`` (K: torch's current CUDA device, 0 unless changed) when a GPU is visible,
    else ``mps`` where available, else ``cpu``; ``cuda`` → ``cuda:K``; ``cuda:N``, ``mps`` and
    ``cpu`` are returned as given once checked to exist. Case and surrounding spaces are ignored.

    Raises
    ------
    DeviceError
        For a name outside ``auto, cpu, cuda, cuda:N, mps`` (e.g. ``gpu``) or a device this machine
        lacks (``cuda`` without a GPU, ``cuda:3`` with two); the message lists the devices present.

    Examples
    --------
    >>> resolve_device("cpu")
    'cpu'
    """
    import torch

    wanted = str(name).strip().lower()
    have = available_devices()
    gpu = have[0].startswith("cuda")
    if wanted == "auto":
        wanted = "cuda" if gpu else have[0]
    if wanted == "cuda" and gpu:
        return f"cuda:{torch.cuda.current_device()}"
    cuda = _CUDA.match(wanted)
    if cuda and cuda.group(1) is not None:
        wanted = f"cuda:{int(cuda.group(1))}"
    if wanted in have:
        return wanted
    if cuda is None and wanted != "mps":
        raise DeviceError(f"unknown device {name!r}: use one of {DEVICE_NAMES} (this machine has {', '.join(have)})")
    if cuda is None:
        why = "this torch build or machine has no Apple Metal (MPS)"
    elif torch.version.cuda is None:
        why = f"torch {torch.__version__} was built without CUDA"
    elif gpu:
        why = f"torch sees {torch.cuda.device_count()} CUDA GPU(s)"
    else:
        why = "torch sees no CUDA GPU"
    raise DeviceError(f"device {name!r} is not available: {why}; this machine has {', '.join(have)} "
                      "(--device auto takes the best of them)")


def resolve_precision(name: str, device: str) -> str:
    """The precision ``name`` means on ``device`` (a name :func:`resolve_device` returned).

    ``auto`` → ``bf16`` on a CUDA GPU that supports it (:func:`torch.cuda.is_bf16_supported`: compute
    capability 8.0 and later), ``fp16`` on older CUDA GPUs, ``fp32`` on the CPU and on MPS. ``fp32``,
    ``bf16`` and ``fp16`` are returned as given (autocast runs both 16-bit types on the CPU too), except
    ``bf16`` on a CUDA GPU without it. ``bf16`` or ``fp16`` on a Linux CPU without native 16-bit float
    instructions (:func:`cpu_float16_flags`) warns that it is emulated: on a 2-core AVX-512 Xeon without them
    crispnet-noglobal's standard step took 8.2 s in bf16 against 2.7 s in fp32; on a 2-core AVX2 AMD EPYC, DeepISP's
    tiled inference of a 96×128 frame 75 s against 1.0 s.

    Raises
    ------
    DeviceError
        For a name outside :data:`PRECISIONS`, or ``bf16`` on a CUDA GPU that lacks it.

    Examples
    --------
    >>> resolve_precision("auto", "cpu")
    'fp32'
    """
    import torch

    wanted = str(name).strip().lower()
    if wanted not in PRECISIONS:
        raise DeviceError(f"unknown precision {name!r}: use one of {', '.join(PRECISIONS)}")
    cuda = torch.device(device).type == "cuda"
    bf16_ok = not cuda or torch.cuda.is_bf16_supported()
    if wanted == "auto":
        return ("bf16" if bf16_ok else "fp16") if cuda else "fp32"
    if wanted == "bf16" and not bf16_ok:
        raise DeviceError(f"precision bf16 is not supported by {device} ({torch.cuda.get_device_name(device)}); "
                          "use --precision fp16 (or auto, which picks it)")
    if wanted in ("bf16", "fp16") and torch.device(device).type == "cpu" and cpu_float16_flags() == set():
        warnings.warn(f"precision {wanted} on this CPU ({cpu_name()}) is emulated: it has no AMX or AVX-512 "
                      f"16-bit float instructions, so {wanted} runs slower than fp32 here (--precision fp32, or auto, "
                      "is faster)", IspBenchWarning)
    return wanted


def _cpuinfo(*fields: str) -> str | None:
    """The value of the first /proc/cpuinfo line that starts with one of ``fields`` (``None``: no such line, or no
    /proc/cpuinfo: not Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(fields):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


@lru_cache(maxsize=1)
def cpu_float16_flags() -> set[str] | None:
    """The CPU's native 16-bit float instruction sets (``amx_bf16``, ``amx_fp16``, ``avx512_bf16``,
    ``avx512_fp16``) from /proc/cpuinfo's flags: an empty set when it has none, ``None`` where they cannot be
    read (not Linux)."""
    flags = _cpuinfo("flags")
    return None if flags is None else set(flags.split()) & {"amx_bf16", "amx_fp16", "avx512_bf16", "avx512_fp16"}


def autocast(device: str, precision: str):
    """The :func:`torch.autocast` context of ``precision`` on ``device`` (disabled for ``fp32``)."""
    import torch

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    return torch.autocast(torch.device(device).type, dtype=dtype, enabled=dtype is not None)


def grad_scaler(device: str, precision: str):
    """A :class:`torch.amp.GradScaler`, enabled for ``fp16`` only (a pass-through otherwise)."""
    import torch

    return torch.amp.GradScaler(torch.device(device).type, enabled=precision == "fp16")


def memory_format(device: str):
    """``torch.channels_last`` on CUDA (cuDNN's fast layout for convolutions, above all in 16 bits),
    else ``torch.contiguous_format``."""
    import torch

    return torch.channels_last if torch.device(device).type == "cuda" else torch.contiguous_format


def configure_for_speed(device: str) -> None:
    """On CUDA: TF32 for fp32 matmuls and convolutions (:func:`torch.set_float32_matmul_precision`
    ``"high"``, ``cudnn.allow_tf32``) and cuDNN autotuning (``cudnn.benchmark``, which picks the fastest
    convolution algorithm per input shape). Nothing changes elsewhere (CPU results stay bit-exact)."""
    import torch

    if torch.device(device).type == "cuda":
        torch.set_float32_matmul_precision("high")
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True


MAX_LOADER_WORKERS = 8
"""The most DataLoader workers :func:`loader_workers` picks for one process."""


def loader_workers(requested: int | None, device: str, processes_on_host: int = 1, *, threads: bool = False) -> int:
    """Loader workers for training on ``device``: ``requested`` when given (0: batches are made in the
    training process), else 0 on the CPU (the model's own threads use the cores) and, on a GPU or MPS,
    one per core this process has (the cores over ``processes_on_host``) less one for the training
    process itself, at most :data:`MAX_LOADER_WORKERS`. ``threads`` (the workers are threads of the
    training process, :class:`isp_bench.data.BatchLoader`) with no worker is an error.

    >>> loader_workers(None, "cpu"), loader_workers(3, "cpu")
    (0, 3)
    """
    if requested is not None and requested < 0:
        raise IspBenchError(f"--loader-workers {requested}: give 0 (no worker processes) or more")
    if requested is not None:
        count = requested
    elif device.split(":")[0] == "cpu":
        count = 0
    else:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        count = max(0, min(MAX_LOADER_WORKERS, cores // max(1, processes_on_host) - 1))
    if threads and not count:
        raise IspBenchError(f"--loader-threads: the loader has no workers on {device} "
                            f"({'--loader-workers 0' if requested == 0 else 'none by default'}); "
                            "give --loader-workers N to make N threads")
    return count


def to_device(value, device: str, layout=None):
    """``value`` (a tensor, or a dict of them, nested) on ``device``: 4-D tensors in ``layout``
    (:func:`memory_format`), copies non-blocking (they overlap compute when the source is pinned)."""
    import torch

    if isinstance(value, dict):
        return {k: to_device(v, device, layout) for k, v in value.items()}
    if not isinstance(value, torch.Tensor):
        return value
    if layout is not None and value.ndim == 4:
        return value.to(device, memory_format=layout, non_blocking=True)
    return value.to(device, non_blocking=True)


@lru_cache(maxsize=1)
def cpu_name() -> str | None:
    """The CPU's model name: /proc/cpuinfo on Linux, sysctl on macOS, else :func:`platform.processor`."""
    try:
        if sys.platform.startswith("linux"):
            name = _cpuinfo("model name", "Model", "cpu model")
            if name is not None:
                return name or None
        elif sys.platform == "darwin":
            out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True,
                                 timeout=5)
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or None


def describe_device(device: str) -> dict[str, Any]:
    """What a run records about the device it ran on (``device``: a name :func:`resolve_device` returned).

    Keys: ``device`` (e.g. ``cuda:0``), ``type`` (``cuda`` | ``mps`` | ``cpu``), ``name`` (the GPU's
    name from :func:`torch.cuda.get_device_name`, else the CPU model), ``torch`` (version), ``cuda``
    (the CUDA version torch was built with, None for CPU-only builds), ``cudnn`` (cuDNN version as
    torch reports it, e.g. 90100 for 9.1.0; None without cuDNN), ``capability``: on CUDA the compute capability
    ``"major.minor"`` (and ``memory_gib``, total device memory, GiB), on the CPU the instruction set torch's
    kernels dispatch to (:func:`torch.backends.cpu.get_cpu_capability`: ``AVX2``, ``AVX512``, ...: two processors
    of one name, "AMD EPYC" say, may differ in it, and with it in their floating-point rounding). Callers add
    run-specific facts beside these (e.g. the numeric precision).
    """
    import torch

    kind = torch.device(device).type
    info: dict[str, Any] = {
        "device": device, "type": kind, "name": cpu_name(), "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
    }
    if kind == "cpu":
        info["capability"] = torch.backends.cpu.get_cpu_capability()
    elif kind == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(name=props.name, capability=f"{props.major}.{props.minor}",
                    memory_gib=round(props.total_memory / 2**30, 2))
    return info
