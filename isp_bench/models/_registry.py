"""Model registry: ``create_model``, ``list_models``, ``model_card`` (DESIGN §3, timm's registry as model).

Each model family registers one or more *entrypoints* with :func:`register_model`. An entrypoint is
a function ``(**overrides) -> nn.Module`` plus a :class:`ModelCard` that says what the model is:
its paper, the input it wants, the metadata it consumes, and the figures its paper reports. The
measured figures (parameter count, MACs at 4032×3024) are never typed in: :func:`model_card` with
``measure=True`` instantiates the model on PyTorch's ``meta`` device and counts them with the
forward-hook counter in :mod:`isp_bench.models.flops`, at no compute or memory cost.

>>> from isp_bench.models import list_models
>>> list_models("crispnet*")
['crispnet', 'crispnet-noglobal', 'crispnet-nowb']
"""

from __future__ import annotations

import dataclasses
import fnmatch
from dataclasses import dataclass, field
from typing import Any, Callable

from isp_bench.errors import IspBenchError, unknown_name_error
from isp_bench.models.papers import Reported, ReportedResult, reported_for  # noqa: F401 (re-exported)

INPUT_KINDS = ("packed_rggb", "bilinear_rgb")
"""``packed_rggb``: batch['raw'] B×4×H/2×W/2 (R, Gr, Gb, B); ``bilinear_rgb``: batch['rgb'] B×3×H×W."""

FRAME_12MP = (3024, 4032)
"""(height, width) of the 12 MP frame at which MACs are reported (4032×3024 landscape)."""


class ModelError(IspBenchError):
    """A model cannot be built or run as asked (bad override, missing weights, bad batch)."""


class ReportedOnlyError(ModelError):
    """The model has no public architecture; only its published numbers are registered."""


@dataclass
class ModelCard:
    """What a registered model is (plays the role of timm's pretrained cfg).

    Attributes:
        name: registry key.
        family: module that implements it (``deepisp``, ``cameranet``, …).
        paper: citation (authors, title, venue, year).
        url: where the paper or code lives.
        input_kind: ``packed_rggb`` or ``bilinear_rgb`` (see :data:`INPUT_KINDS`).
        metadata: batch keys it consumes beyond the image (``wb``, ``thumb``, ``color_matrix``…).
        reported: the papers' figures for it (:class:`Reported`), read from the papers' CSV
            (:mod:`isp_bench.models.papers`), never typed into a model module.
        notes: every known difference between this implementation and the paper, in words.
        pretrained: where its pretrained weights come from, or ``None`` when it trains from scratch.
        reported_only: no architecture is available; ``create_model`` raises.
        global_branch: the model looks at the whole frame (tiled inference feeds it the full-frame
            global input on every tile).
        config: the keyword arguments the entrypoint uses.
        params: measured parameter count (filled by :func:`model_card` ``measure=True``).
        macs_4032x3024: measured multiply-accumulates for one 4032×3024 frame (same).
    """

    name: str
    family: str
    paper: str
    url: str = ""
    input_kind: str | None = "packed_rggb"
    metadata: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    pretrained: str | None = None
    reported_only: bool = False
    global_branch: bool = False
    config: dict[str, Any] = field(default_factory=dict)
    params: int | None = None
    macs_4032x3024: int | None = None

    @property
    def reported(self) -> Reported:
        """The papers' params, GFLOPs, seconds per frame and result rows for this model."""
        return reported_for(self.name)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (used by ``isp-bench models --json`` and run results)."""
        d = dataclasses.asdict(self)
        d["reported"] = {**dataclasses.asdict(self.reported), "macs": self.reported.macs}
        return d


@dataclass
class _Entry:
    fn: Callable[..., Any]
    card: ModelCard
    measured: bool = False


_REGISTRY: dict[str, _Entry] = {}


def register_model(card: ModelCard) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering ``fn(**overrides) -> nn.Module`` under ``card.name``."""

    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        if card.name in _REGISTRY:
            raise ModelError(f"model {card.name!r} is registered twice ({fn.__module__}); names must be unique")
        if card.input_kind is not None and card.input_kind not in INPUT_KINDS:
            raise ModelError(f"model {card.name!r}: input_kind {card.input_kind!r} not in {INPUT_KINDS}")
        _REGISTRY[card.name] = _Entry(fn, card)
        return fn

    return decorator


def register_reported_only(card: ModelCard) -> None:
    """Register a model known only from its paper's numbers."""
    card.reported_only = True

    def _unavailable(**_: Any) -> Any:
        raise ReportedOnlyError(
            f"model {card.name!r} has no public code or architecture; only its published numbers are "
            "registered (see model_card). Pick a runnable model from list_models()."
        )

    _REGISTRY[card.name] = _Entry(_unavailable, card, measured=True)


def _entry(name: str) -> _Entry:
    _load_families()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise unknown_name_error("model", name, list(_REGISTRY)) from None


def list_models(pattern: str = "*", *, include_reported_only: bool = True) -> list[str]:
    """Registered model names matching a shell-style wildcard ``pattern``, whatever its case (sorted)."""
    _load_families()
    names = [
        n for n, e in _REGISTRY.items()
        if fnmatch.fnmatchcase(n, pattern.lower()) and (include_reported_only or not e.card.reported_only)
    ]
    return sorted(names)


def create_model(name: str, **overrides: Any):
    """Build model ``name``; keyword ``overrides`` replace entries of its card's ``config``.

    Raises :class:`~isp_bench.errors.UnknownNameError` (listing near misses) for an unknown name,
    :class:`ReportedOnlyError` for a model with no architecture, and :class:`ModelError` for an
    override the entrypoint does not accept.
    """
    entry = _entry(name)
    if entry.card.reported_only:
        return entry.fn()
    unknown = set(overrides) - set(entry.card.config)
    if unknown:
        raise ModelError(
            f"model {name!r} does not take {', '.join(sorted(unknown))}; its options are "
            f"{', '.join(sorted(entry.card.config)) or '(none)'}"
        )
    kwargs = {**entry.card.config, **overrides}
    model = entry.fn(**kwargs)
    model.card = entry.card if not overrides else dataclasses.replace(
        entry.card, config=kwargs, params=None, macs_4032x3024=None
    )
    return model


def model_card(name: str, *, measure: bool = False) -> ModelCard:
    """The card of ``name``; with ``measure=True`` its ``params`` and ``macs_4032x3024`` are filled
    by building the model on the meta device and counting, cached per process and on disk
    (:mod:`isp_bench.models._cache`, keyed by the code version and the model's config)."""
    entry = _entry(name)
    if measure and not entry.measured:
        from isp_bench.models import _cache

        cached = _cache.cached_figures(name, entry.card.config)
        if cached is not None:
            entry.card.params, entry.card.macs_4032x3024 = cached
            entry.measured = True
            return entry.card
        from isp_bench.models.flops import count_macs, count_params, example_batch

        import torch

        with torch.device("meta"):
            kwargs = dict(entry.card.config)
            if "pretrained" in kwargs:  # weights cannot be loaded onto meta tensors, and need not be
                kwargs["pretrained"] = False
            model = entry.fn(**kwargs)
        entry.card.params = count_params(model)
        batch = example_batch(entry.card, FRAME_12MP, device="meta")
        entry.card.macs_4032x3024 = count_macs(model, batch).total
        entry.measured = True
        _cache.store({name: entry.card.to_dict()})
    return entry.card


def model_cards(pattern: str = "*", *, measure: bool = False) -> list[ModelCard]:
    """Cards of every model matching ``pattern``."""
    return [model_card(n, measure=measure) for n in list_models(pattern)]


_LOADED = False


def _load_families() -> None:
    """Import every public module of :mod:`isp_bench.models` (names not starting with ``_``) so that
    their ``@register_model`` decorators run: adding a model is adding its module."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    import importlib
    import pkgutil

    import isp_bench.models as package

    for module in pkgutil.iter_modules(package.__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{module.name}")
