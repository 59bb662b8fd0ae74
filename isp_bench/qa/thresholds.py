"""The limits past which :func:`isp_bench.qa.qa_manifest` flags a pair (standard library only, so
``isp-bench qa --help`` can show them without loading the checks)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields


@dataclass(frozen=True)
class Thresholds:
    """Flag limits; each field's ``metadata["help"]`` says what it bounds (the ``isp-bench qa`` help)."""

    misaligned_px: float = field(default=1.0, metadata={"help": "flag `misaligned` when the global warp moves a "
                                                                 "frame corner more than this many pixels"})
    motion_px: float = field(default=2.0, metadata={"help": "flag `motion` when a textured tile still moves more "
                                                            "than this many pixels after the global warp"})
    clipped_fraction: float = field(default=0.01, metadata={"help": "flag `clipped` when more than this fraction "
                                                                    "of the raw photosites is at the white level"})
    blur_ratio: float = field(default=0.75, metadata={"help": "flag `blurred` when sharpness is below this times "
                                                              "the scene's other frame (or the session's median)"})
    exposure_stops: float = field(default=0.25, metadata={"help": "flag `exposure_mismatch` when a bracket's "
                                                                  "exposure ratio is more than this many stops off"})

    def __post_init__(self):
        from isp_bench.errors import IspBenchError

        for limit in fields(self):
            value = getattr(self, limit.name)
            if not value >= 0:  # NaN too
                raise IspBenchError(f"--{limit.name.replace('_', '-')} {value}: a limit is 0 or more")
