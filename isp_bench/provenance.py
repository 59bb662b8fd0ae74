"""Where a number came from: isp-bench version, git commit, package versions, machine, device.

Run results (``runs/*/result.json``) and benchmark JSON files both record :func:`environment`.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

from isp_bench import __version__
from isp_bench.devices import cpu_name, describe_device

DEFAULT_PACKAGES = ("torch", "torchvision", "numpy", "timm", "pytorch-msssim", "lpips", "colour-science", "rawpy",
                    "scikit-image", "pyarrow")


COMMIT_ENV = "ISP_BENCH_GIT_COMMIT"
"""Names the commit of a copy of the checkout without its ``.git`` (a tree copied to a GPU host or a cluster
node); recorded as declared (``git_commit_declared``), since nothing can check it there."""


def git_commit() -> tuple[str | None, bool | None]:
    """(commit, has uncommitted changes to tracked files) of the isp-bench checkout, or (None, None)."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                                    capture_output=True, text=True).stdout.strip())
        return commit, dirty
    except (OSError, subprocess.CalledProcessError):
        return None, None


def package_versions(names: Iterable[str]) -> dict[str, str | None]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def environment(packages: Iterable[str] = DEFAULT_PACKAGES, device: str | None = None) -> dict[str, Any]:
    """isp-bench version, git commit, package versions, Python, machine and date; with ``device`` (a name
    :func:`isp_bench.devices.resolve_device` returned) also ``device``: :func:`~isp_bench.devices.describe_device`
    (GPU or CPU model, torch / CUDA / cuDNN versions)."""
    commit, dirty = git_commit()
    declared = commit is None and os.environ.get(COMMIT_ENV)
    info: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "isp_bench_version": __version__, "git_commit": declared or commit, "git_dirty": dirty,
        **({"git_commit_declared": f"${COMMIT_ENV}: the checkout has no .git"} if declared else {}),
        "packages": package_versions(packages), "python": platform.python_version(),
        "platform": platform.platform(), "machine": platform.machine(),
        "processor": cpu_name(), "cpus": os.cpu_count(),
    }
    if device is not None:
        info["device"] = describe_device(device)
    if "torch" in sys.modules:
        info["torch_threads"] = sys.modules["torch"].get_num_threads()
    return info
