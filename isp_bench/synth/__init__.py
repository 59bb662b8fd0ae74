"""The synthetic camera: the physically based embedded default dataset (no downloads)."""

from isp_bench.synth.generate import FILES, SynthConfig, generate, scene_plan
from isp_bench.synth.sensor import SensorSpec

__all__ = ["FILES", "SensorSpec", "SynthConfig", "generate", "scene_plan"]
