"""Model zoo: every learned ISP and baseline behind one registry (DESIGN §3).

>>> from isp_bench.models import create_model, list_models, model_card
>>> model = create_model("cameranet")
>>> model_card("deepisp", measure=True).params
631518

See :mod:`isp_bench.models._registry` for the registry and :class:`ModelCard`, one module per
family: :mod:`~isp_bench.models.deepisp`, :mod:`~isp_bench.models.cameranet`,
:mod:`~isp_bench.models.crispnet`, :mod:`~isp_bench.models.classic`, :mod:`~isp_bench.models.unet`,
:mod:`~isp_bench.models.djdd`, :mod:`~isp_bench.models.pynet`, :mod:`~isp_bench.models.reported`, and
:mod:`~isp_bench.models.papers` for the papers' published figures.

Names are imported on first use (PEP 562), so importing this package (or ``isp_bench.models.cli``)
does not import PyTorch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "IspModel": "_common",
    "FRAME_12MP": "_registry",
    "INPUT_KINDS": "_registry",
    "ModelCard": "_registry",
    "ModelError": "_registry",
    "ReportedOnlyError": "_registry",
    "create_model": "_registry",
    "list_models": "_registry",
    "model_card": "_registry",
    "model_cards": "_registry",
    "register_model": "_registry",
    "register_reported_only": "_registry",
    "Reported": "papers",
    "ReportedResult": "papers",
    "MacReport": "flops",
    "count_macs": "flops",
    "count_params": "flops",
    "example_batch": "flops",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
