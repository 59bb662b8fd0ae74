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

from isp_bench._lazy import lazy_package

# name -> submodule, imported on first use (torch loads only then: `isp-bench --help` stays fast)
_EXPORTS = {
    "IspModel": "._common",
    **dict.fromkeys(("FRAME_12MP", "INPUT_KINDS", "ModelCard", "ModelError", "ReportedOnlyError", "create_model",
                     "list_models", "model_card", "model_cards", "register_model", "register_reported_only"),
                    "._registry"),
    **dict.fromkeys(("Reported", "ReportedResult"), ".papers"),
    **dict.fromkeys(("MacReport", "count_macs", "count_params", "example_batch"), ".flops"),
}
__all__ = sorted(_EXPORTS)
lazy_package(__name__, _EXPORTS)
