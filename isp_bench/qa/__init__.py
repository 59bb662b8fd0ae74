"""Pair quality checks (``isp-bench qa MANIFEST --root DIR``): registration, residual motion,
exposure ratio, clipping and blur per pair, written back to the manifest as flags and ``extra["qa"]``."""

from isp_bench._lazy import lazy_package

# name -> submodule; imported on first use, so importing the package stays cheap (`isp-bench --help`)
_EXPORTS = {
    **dict.fromkeys(("QA_FLAGS", "QAResult", "qa_manifest"), ".run"),
    "Thresholds": ".thresholds",
}
__all__ = sorted(_EXPORTS)
lazy_package(__name__, _EXPORTS)
