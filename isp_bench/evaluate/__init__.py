"""Evaluation: full-resolution tiled inference (DESIGN §1, ``isp_bench.evaluate``), scoring of a split,
outside submissions and rescoring. Names load on first use, so the CLI's parser stays light."""

from isp_bench._lazy import lazy_package

_EXPORTS = dict.fromkeys(("batch_from_capture", "infer_full", "tiled_map"), ".tiled")
__all__ = sorted(_EXPORTS)
lazy_package(__name__, _EXPORTS)
