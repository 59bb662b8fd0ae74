"""Pair quality checks (``isp-bench qa MANIFEST --root DIR``): registration, residual motion,
exposure ratio, clipping and blur per pair, written back to the manifest as flags and ``extra["qa"]``."""

from isp_bench.qa.run import QA_FLAGS, QAResult, Thresholds, qa_manifest

__all__ = ["QA_FLAGS", "QAResult", "Thresholds", "qa_manifest"]
