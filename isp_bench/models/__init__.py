"""Model zoo: every learned ISP and baseline behind one registry (DESIGN §3).

>>> from isp_bench.models import create_model, list_models, model_card
>>> model = create_model("cameranet")
>>> model_card("deepisp", measure=True).params
631518

See :mod:`isp_bench.models._registry` for the registry and :class:`ModelCard`, and one module per
family: :mod:`~isp_bench.models.deepisp`, :mod:`~isp_bench.models.cameranet`,
:mod:`~isp_bench.models.crispnet`, :mod:`~isp_bench.models.classic`, :mod:`~isp_bench.models.unet`,
:mod:`~isp_bench.models.djdd`, :mod:`~isp_bench.models.pynet`, :mod:`~isp_bench.models.reported`.
"""

from isp_bench._lazy import lazy_package

# name -> submodule, imported on first use (torch loads only then: `isp-bench --help` stays fast)
_EXPORTS = {
    "IspModel": "._common",
    **dict.fromkeys(("FRAME_12MP", "INPUT_KINDS", "ModelCard", "ModelError", "Reported", "ReportedOnlyError",
                     "ReportedResult", "create_model", "list_models", "model_card", "model_cards", "register_model",
                     "register_reported_only"), "._registry"),
    **dict.fromkeys(("MacReport", "count_macs", "count_params", "example_batch"), ".flops"),
}
lazy_package(__name__, _EXPORTS)

__all__ = [
    "FRAME_12MP",
    "INPUT_KINDS",
    "IspModel",
    "MacReport",
    "ModelCard",
    "ModelError",
    "Reported",
    "ReportedOnlyError",
    "ReportedResult",
    "count_macs",
    "count_params",
    "create_model",
    "example_batch",
    "list_models",
    "model_card",
    "model_cards",
    "register_model",
    "register_reported_only",
]
