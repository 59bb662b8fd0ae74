"""Capture rigs as a library: monitor slideshow sessions (frames, log, triggers, a simulated camera),
exposure-bracket plans, and session ingest into a ``pairs`` manifest. The scripts in ``capture/`` and
``isp-bench capture ...`` are thin layers over these modules."""

from isp_bench.capture.brackets import (
                                       BracketPlan,
                                       first_shot_metadata,
                                       plan_brackets,
                                       snap_exposure,
)
from isp_bench.capture.frames import FRAME_TYPES, DisplayLayout, render_frame
from isp_bench.capture.session import (
                                       CaptureError,
                                       LogEntry,
                                       Pacing,
                                       match_captures_by_time,
                                       plan_sequence,
                                       read_log,
                                       run_session,
)
from isp_bench.capture.session_ingest import ingest_session

__all__ = [
                                       "FRAME_TYPES",
                                       "BracketPlan",
                                       "CaptureError",
                                       "DisplayLayout",
                                       "LogEntry",
                                       "Pacing",
                                       "first_shot_metadata",
                                       "ingest_session",
                                       "match_captures_by_time",
                                       "plan_brackets",
                                       "plan_sequence",
                                       "read_log",
                                       "render_frame",
                                       "run_session",
                                       "snap_exposure",
]
