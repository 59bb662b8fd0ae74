"""Metric specs and the metric registry.

Every metric isp-bench reports is a :class:`MetricSpec`: a pure function plus the facts needed to
compare two numbers honestly (which paper, which reference implementation it reproduces, the pinned
settings, the direction, a version that changes whenever the numbers could change). Results record
``spec.to_dict()`` beside every score, so two numbers are only compared when their specs match.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

import numpy as np

from isp_bench.errors import IspBenchError, unknown_name_error


class MetricError(IspBenchError):
    """A metric could not be computed (bad input, missing weights, unsupported size)."""


class MetricInputError(MetricError, ValueError):
    """An image handed to a metric has the wrong shape, dtype or value range."""


class MetricWeightsError(MetricError, FileNotFoundError):
    """Trained weights a learned metric needs are not on disk; the message says where to put them."""


@dataclass(frozen=True)
class MetricSpec:
    """What one metric is, pinned.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"ssim"``.
    fn : callable
        ``fn(pred, target) -> float`` for full-reference metrics, ``fn(image) -> float`` for
        no-reference metrics. Images are H×W×3 sRGB in [0, 1] (numpy or torch).
    reference : str
        The paper and the implementation whose numbers this metric reproduces.
    settings : mapping
        Every setting that changes the number (colour space, window, data range, ...).
    higher_is_better : bool
        Direction of the score.
    full_reference : bool
        True when the metric compares a prediction with a target.
    version : str
        Bumped whenever an implementation change could change a reported number.
    units : str
        Unit of the score (``"dB"``, ``"ΔE*ab"``, ``""``).
    """

    name: str
    fn: Callable[..., float] = field(repr=False, compare=False)
    reference: str
    settings: Mapping[str, Any] = field(default_factory=dict, hash=False)
    higher_is_better: bool = True
    full_reference: bool = True
    version: str = "1"
    units: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "settings", MappingProxyType(dict(self.settings)))

    def __call__(self, *images: Any, **kwargs: Any) -> float:
        expected = 2 if self.full_reference else 1
        if len(images) != expected:
            kind = "(pred, target)" if self.full_reference else "(image,)"
            raise MetricInputError(
                f"metric {self.name!r} takes {kind}, got {len(images)} image(s)"
            )
        return self.fn(*images, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable record of the spec (everything but the function)."""
        return {
            "name": self.name,
            "reference": self.reference,
            "settings": _jsonable(dict(self.settings)),
            "higher_is_better": self.higher_is_better,
            "full_reference": self.full_reference,
            "version": self.version,
            "units": self.units,
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


_REGISTRY: dict[str, MetricSpec] = {}


def register_metric(spec: MetricSpec) -> MetricSpec:
    """Add ``spec`` to the registry; a second spec under the same name is an error."""
    if spec.name in _REGISTRY and _REGISTRY[spec.name] is not spec:
        raise MetricError(f"metric {spec.name!r} is already registered; pick another name")
    _REGISTRY[spec.name] = spec
    return spec


def _load_metrics() -> None:
    """Import the metric modules so that their ``register_metric`` calls run (once; later calls are no-ops)."""
    from . import brisque, color, deepiqa, fidelity, lpips, scielab  # noqa: F401


def get_metric(name: str) -> MetricSpec:
    """The :class:`MetricSpec` registered as ``name``.

    Raises
    ------
    isp_bench.errors.UnknownNameError
        With the closest registered names.

    Examples
    --------
    >>> from isp_bench.metrics import get_metric
    >>> get_metric("psnr").settings["data_range"]
    1.0
    """
    _load_metrics()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise unknown_name_error("metric", name, list(_REGISTRY)) from None


def list_metrics(pattern: str = "*", *, full_reference: bool | None = None) -> list[str]:
    """Registered metric names matching a shell-style ``pattern``, sorted.

    Examples
    --------
    >>> from isp_bench.metrics import list_metrics
    >>> list_metrics("ssim*")
    ['ssim', 'ssim_rgb']
    """
    _load_metrics()
    names = [
        n
        for n, s in _REGISTRY.items()
        if fnmatch.fnmatchcase(n, pattern)
        and (full_reference is None or s.full_reference == full_reference)
    ]
    return sorted(names)


# --------------------------------------------------------------------------------------------
# input handling shared by all metric families


def as_srgb(image: Any, what: str = "image") -> np.ndarray:
    """``image`` as a C-contiguous float64 H×W×3 numpy array of sRGB values in [0, 1].

    Accepts numpy arrays or torch tensors (H×W×3, or 3×H×W / 1×3×H×W tensors, which are moved to
    H×W×3). Floats must lie in [0, 1]; uint8 and uint16 arrays are divided by 255 and 65535.
    """
    arr = image
    if hasattr(arr, "detach") and hasattr(arr, "cpu"):  # torch tensor, CHW convention
        t = arr.detach().cpu()
        if t.ndim == 4 and t.shape[0] == 1:
            t = t[0]
        if t.ndim == 3 and t.shape[0] == 3 and t.shape[-1] != 3:
            t = t.permute(1, 2, 0)
        arr = t.numpy()
    arr = np.asarray(arr)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise MetricInputError(
            f"{what}: expected an H×W×3 sRGB image, got shape {tuple(arr.shape)}; "
            "pass RGB images (torch tensors may be 3×H×W)"
        )
    if arr.dtype == np.uint8:
        return arr.astype(np.float64) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float64) / 65535.0
    if not np.issubdtype(arr.dtype, np.floating):
        raise MetricInputError(f"{what}: unsupported dtype {arr.dtype}; use float in [0, 1] or uint8")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    lo, hi = float(arr.min()), float(arr.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise MetricInputError(f"{what}: contains NaN or infinite values")
    if lo < 0.0 or hi > 1.0:
        raise MetricInputError(
            f"{what}: values span [{lo:.4g}, {hi:.4g}] but sRGB metrics take [0, 1]; "
            "clip predictions to [0, 1] (or divide 8-bit data by 255) before scoring"
        )
    return arr


def as_pair(pred: Any, target: Any) -> tuple[np.ndarray, np.ndarray]:
    """Both images via :func:`as_srgb`, checked to have the same shape."""
    p = as_srgb(pred, "pred")
    t = as_srgb(target, "target")
    if p.shape != t.shape:
        raise MetricInputError(
            f"pred has shape {p.shape} but target has shape {t.shape}; "
            "crop or resize them to the same size before scoring"
        )
    return p, t


# MATLAB rgb2gray weights (the inverse of the NTSC YIQ matrix, first row), as MATLAB prints them.
MATLAB_RGB2GRAY = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])


def rgb2gray_matlab(rgb: np.ndarray) -> np.ndarray:
    """Grey as MATLAB's ``rgb2gray`` on double input (no rounding): ``rgb @ MATLAB_RGB2GRAY``."""
    return rgb @ MATLAB_RGB2GRAY


def rgb2gray_matlab_uint8(rgb: np.ndarray) -> np.ndarray:
    """Grey as MATLAB's ``rgb2gray`` on 8-bit input: the weighted sum rounded to 8 bits (half away
    from zero, as MATLAB's uint8 conversion), returned on the [0, 1] scale.

    This is the grey of the official TID2013 SSIM and MS-SSIM values.
    """
    return np.floor(rgb2gray_matlab(rgb) * 255.0 + 0.5) / 255.0
