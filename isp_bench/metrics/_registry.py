"""Metric specs and the metric registry.

Every metric isp-bench reports is a :class:`MetricSpec`: a pure function plus the facts needed to
compare two numbers honestly (which paper, which reference implementation it reproduces, the pinned
settings, the direction, a version that changes whenever the numbers could change). Results record
``spec.to_dict()`` beside every score, so two numbers are only compared when their specs match.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Callable, Mapping

import numpy as np

from isp_bench.errors import IspBenchError, unknown_name_error


class MetricError(IspBenchError):
    """A metric could not be computed (bad input, missing weights, unsupported size)."""


class MetricInputError(MetricError, ValueError):
    """An image handed to a metric has the wrong shape, dtype or value range."""


class ImageTooSmallError(MetricInputError):
    """An image is smaller than the metric can score (MS-SSIM's five scales need 161 px, SSIM's window 11)."""


class MetricWeightsError(MetricError, FileNotFoundError):
    """Trained weights a learned metric needs are not on disk; the message says where to put them."""


@dataclass(frozen=True)
class MetricSpec:
    """What one metric is, pinned.

    A metric module declares everything about its metric here: the function, the facts results
    record, whether the default suite scores it, and how it uses the shared per-pair work of
    :class:`isp_bench.metrics.pair.PairWork`. :func:`~isp_bench.metrics.score.score_pair`, the
    ``isp-bench score`` help and :data:`isp_bench.metrics.DEFAULT_METRICS` are derived from these
    specs.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"ssim"``; the function is also ``isp_bench.metrics.<name>``.
    fn : callable
        ``fn(pred, target, **tunable) -> float`` for full-reference metrics, ``fn(image, **tunable)
        -> float`` for no-reference metrics. Images are H×W×3 sRGB in [0, 1] (numpy or torch).
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
    default_suite : bool
        Scored by ``isp-bench run``, ``evaluate`` and ``score`` when no metrics are named.
    tunable : tuple of str
        Settings a caller may change with :meth:`with_settings`; they are passed to ``fn`` (and
        ``on_pair``/``plan``) as keyword arguments, so a spec always runs the settings it records.
    on_pair : callable, optional
        ``on_pair(work, **tunable) -> float``: the same number computed from a
        :class:`~isp_bench.metrics.pair.PairWork`, sharing its cached intermediate results with the
        other metrics of a :func:`~isp_bench.metrics.score.score_pair` call. Without it the metric
        gets the validated arrays ``work.pred`` (and ``work.target``).
    plan : callable, optional
        ``plan(work, **tunable)``: announces the shared passes ``on_pair`` will ask for, before any
        metric of the pair runs, so that one pass serves several metrics.
    """

    name: str
    fn: Callable[..., float] = field(repr=False, compare=False)
    reference: str
    settings: Mapping[str, Any] = field(default_factory=dict, hash=False)
    higher_is_better: bool = True
    full_reference: bool = True
    version: str = "1"
    units: str = ""
    default_suite: bool = False
    tunable: tuple[str, ...] = ()
    on_pair: Callable[..., float] | None = field(default=None, repr=False, compare=False)
    plan: Callable[..., None] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "settings", MappingProxyType(dict(self.settings)))
        missing = [k for k in self.tunable if k not in self.settings]
        if missing:
            raise MetricError(f"metric {self.name!r}: tunable settings {missing} are not in its settings")

    def _tunable_values(self) -> dict[str, Any]:
        return {k: self.settings[k] for k in self.tunable}

    def __call__(self, *images: Any, **kwargs: Any) -> float:
        """Score ``(pred, target)`` (or ``(image,)``) with exactly the settings this spec records.

        Keyword arguments are refused: they would change the number without entering the recorded
        spec. Derive a spec with :meth:`with_settings` instead.
        """
        expected = 2 if self.full_reference else 1
        if len(images) != expected:
            kind = "(pred, target)" if self.full_reference else "(image,)"
            raise MetricInputError(
                f"metric {self.name!r} takes {kind}, got {len(images)} image(s)"
            )
        if kwargs:
            changed = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
            how = (f"get_metric({self.name!r}).with_settings({changed})(...) runs and records them"
                   if set(kwargs) <= set(self.tunable) else
                   f"settings that can change: {', '.join(self.tunable) or 'none'}; for other options "
                   f"call the function isp_bench.metrics.{self.name} directly (its numbers are not this spec's)")
            raise MetricError(
                f"metric {self.name!r} runs the settings its spec records; keyword arguments ({changed}) "
                f"would change the number without entering the spec: {how}"
            )
        return self.fn(*images, **self._tunable_values())

    def with_settings(self, **changes: Any) -> "MetricSpec":
        """A derived spec with some :attr:`tunable` settings changed; it runs and records them.

        The derived spec is not registered (the registry keeps the pinned settings) and carries the
        same name, so results written with it say exactly which settings produced the number.

        Examples
        --------
        >>> from isp_bench.metrics import get_metric
        >>> wide = get_metric("scielab").with_settings(samp_per_deg=40.0)
        >>> wide.settings["samp_per_deg"], get_metric("scielab").settings["samp_per_deg"]
        (40.0, 23.0)
        """
        unknown = sorted(set(changes) - set(self.tunable))
        if unknown:
            raise MetricError(
                f"metric {self.name!r}: {', '.join(unknown)} cannot be changed; tunable settings: "
                f"{', '.join(self.tunable) or 'none (the spec is fixed)'}"
            )
        return replace(self, settings={**self.settings, **changes})

    def score_work(self, work: Any) -> float:
        """This metric on a :class:`~isp_bench.metrics.pair.PairWork` (same number as a call)."""
        kw = self._tunable_values()
        if self.on_pair is not None:
            return self.on_pair(work, **kw)
        images = (work.pred, work.target) if self.full_reference else (work.pred,)
        return self.fn(*images, **kw)

    def plan_work(self, work: Any) -> None:
        """Announce to ``work`` the shared passes :meth:`score_work` will use (see ``plan``)."""
        if self.plan is not None:
            self.plan(work, **self._tunable_values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable record of the spec (everything that defines the number)."""
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
_DISCOVERED = False


def discover() -> None:
    """Import every public module of :mod:`isp_bench.metrics` once, so each registers its specs.

    Adding a metric is adding a module: nothing lists the modules. Runs on the first registry
    lookup, not at ``import isp_bench.metrics``, which therefore stays cheap.
    """
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    import importlib
    import pkgutil

    import isp_bench.metrics as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{info.name}")


def register_metric(spec: MetricSpec) -> MetricSpec:
    """Add ``spec`` to the registry; a second spec under the same name is an error."""
    if spec.name in _REGISTRY and _REGISTRY[spec.name] is not spec:
        raise MetricError(f"metric {spec.name!r} is already registered; pick another name")
    _REGISTRY[spec.name] = spec
    return spec


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
    discover()
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
    discover()
    names = [
        n
        for n, s in _REGISTRY.items()
        if fnmatch.fnmatchcase(n, pattern)
        and (full_reference is None or s.full_reference == full_reference)
    ]
    return sorted(names)


def default_suite() -> tuple[str, ...]:
    """Names of the registered metrics with ``default_suite=True``, in registration order.

    This is the one definition of the default metric suite (``isp-bench run``, ``evaluate`` and
    ``score``); :data:`isp_bench.metrics.DEFAULT_METRICS` holds it once every metric is registered.
    """
    discover()
    return tuple(n for n, s in _REGISTRY.items() if s.default_suite)


# --------------------------------------------------------------------------------------------
# input handling shared by all metric families


def _as_hwc_array(image: Any, what: str) -> np.ndarray:
    """``image`` as a numpy H×W×3 array, values untouched (torch 3×H×W / 1×3×H×W moved to H×W×3)."""
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
    return arr


def as_srgb(image: Any, what: str = "image", data_range: float | None = None) -> np.ndarray:
    """``image`` as a C-contiguous float64 H×W×3 numpy array of sRGB values in [0, 1].

    Accepts numpy arrays or torch tensors (H×W×3, or 3×H×W / 1×3×H×W tensors, which are moved to
    H×W×3).

    Parameters
    ----------
    image : array_like
        The image.
    what : str
        How error messages name it.
    data_range : float, optional
        scikit-image's meaning: the range of the input values as given, here ``[0, data_range]``
        (e.g. 255 for 8-bit data). The values are divided by it. When omitted, the dtype says it,
        as scikit-image's default does: uint8 and uint16 are divided by 255 and 65535, floats must
        already lie in [0, 1].

    Raises
    ------
    MetricInputError
        Wrong shape or dtype, NaN/inf, or values outside the range.
    """
    arr = _as_hwc_array(image, what)
    if data_range is not None:
        if not (isinstance(data_range, (int, float, np.number)) and np.isfinite(data_range) and data_range > 0):
            raise MetricInputError(f"{what}: data_range must be a positive number, got {data_range!r}")
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise MetricInputError(f"{what}: unsupported dtype {arr.dtype}; use floats or integers")
        values = arr.astype(np.float64)
        _check_range(values, float(data_range), what, f"data_range={data_range:g} says they lie in [0, {data_range:g}]",
                     "pass the range the values really span (255 for 8-bit data, 65535 for 16-bit)")
        return np.ascontiguousarray(values / float(data_range))
    if arr.dtype == np.uint8:
        return arr.astype(np.float64) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float64) / 65535.0
    if not np.issubdtype(arr.dtype, np.floating):
        raise MetricInputError(f"{what}: unsupported dtype {arr.dtype}; use float in [0, 1] or uint8")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    _check_range(arr, 1.0, what, "sRGB metrics take [0, 1]",
                      "clip predictions to [0, 1] (or divide 8-bit data by 255, or pass data_range=255) before scoring")
    return arr


def _check_range(arr: np.ndarray, top: float, what: str, expectation: str, fix: str, nan_fix: str = "") -> None:
    """Raise :class:`MetricInputError` unless every value of ``arr`` is finite and in [0, top]."""
    lo, hi = float(arr.min()), float(arr.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise MetricInputError(f"{what}: contains NaN or infinite values" + (f"; {nan_fix}" if nan_fix else ""))
    if lo < 0.0 or hi > top:
        raise MetricInputError(f"{what}: values span [{lo:.4g}, {hi:.4g}] but {expectation}; {fix}")


def as_pair(pred: Any, target: Any, data_range: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Both images via :func:`as_srgb`, checked to have the same shape."""
    p = as_srgb(pred, "pred", data_range)
    t = as_srgb(target, "target", data_range)
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
