"""On-disk cache of the measured model cards (parameters and MACs at 4032×3024).

Counting MACs means importing PyTorch and building every model on the meta device (seconds);
the result only changes with the model code, the papers' CSV or the PyTorch/timm versions. The cards
are kept in ``$XDG_CACHE_HOME/isp-bench/model-cards.json`` (default ``~/.cache/isp-bench``), keyed by
:func:`code_version` and, per model, by its config, so ``isp-bench models`` answers from the file
without importing PyTorch. Standard library only. The file is written atomically; a cache that cannot
be read or written is ignored (the figures are then measured again).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
from pathlib import Path
from typing import Any

from isp_bench.files import atomic_write_text
from isp_bench.models.papers import REPORTED_CSV

CACHE_FILE = "model-cards.json"
_PACKAGES = ("torch", "timm")  # their versions change what the meta-device forward pass builds


def cache_path() -> Path:
    """``$XDG_CACHE_HOME/isp-bench/model-cards.json`` (``~/.cache`` when XDG_CACHE_HOME is unset)."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "isp-bench" / CACHE_FILE


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """sha256 of the model code (``isp_bench/models/*.py``), the papers' CSV and the PyTorch/timm versions."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).resolve().parent.glob("*.py")) + [REPORTED_CSV]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    for package in _PACKAGES:
        try:
            digest.update(f"{package}=={importlib.metadata.version(package)}".encode())
        except importlib.metadata.PackageNotFoundError:
            digest.update(f"{package} absent".encode())
    return digest.hexdigest()


def load() -> dict[str, Any]:
    """The cache for this :func:`code_version`: ``{"cards": {name: card dict}, "complete": bool}``
    (``complete``: every registered model is in it); empty when absent, stale or unreadable."""
    try:
        data = json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return {"cards": {}, "complete": False}
    if not isinstance(data, dict) or data.get("code_version") != code_version():
        return {"cards": {}, "complete": False}
    return {"cards": data.get("cards", {}), "complete": bool(data.get("complete"))}


def store(cards: dict[str, dict[str, Any]], complete: bool = False) -> None:
    """Merge measured card dicts (``ModelCard.to_dict()``) into the cache; ``complete`` when ``cards``
    holds every registered model."""
    current = load()
    data = {"code_version": code_version(), "complete": complete or current["complete"],
            "cards": {**current["cards"], **cards}}
    try:
        atomic_write_text(cache_path(), json.dumps(data, indent=1, sort_keys=True, default=str))
    except OSError:
        pass  # a read-only home: measure again next time


def cached_figures(name: str, config: dict[str, Any]) -> tuple[int, int] | None:
    """(params, MACs at 4032×3024) cached for model ``name`` with ``config``, or ``None``."""
    card = load()["cards"].get(name)
    if not card or card.get("config") != json.loads(json.dumps(config, default=str)):
        return None
    if card.get("params") is None or card.get("macs_4032x3024") is None:
        return None
    return card["params"], card["macs_4032x3024"]
