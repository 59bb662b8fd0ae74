"""Evaluation: full-resolution tiled inference (DESIGN §1, ``isp_bench.evaluate``)."""

from isp_bench.evaluate.tiled import batch_from_capture, infer_full, tiled_map

__all__ = ["batch_from_capture", "infer_full", "tiled_map"]
