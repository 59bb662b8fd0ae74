"""Capture rigs as a library: monitor slideshow sessions (frames, log, triggers, a simulated camera),
exposure-bracket plans, and session ingest into a ``pairs`` manifest. The scripts in ``capture/`` and
``isp-bench capture ...`` are thin layers over these modules."""

from isp_bench._lazy import lazy_package

# name -> submodule; imported on first use, so importing the package stays cheap (`isp-bench --help`)
_EXPORTS = {
    **dict.fromkeys(("BracketPlan", "first_shot_metadata", "plan_brackets", "snap_exposure"), ".brackets"),
    **dict.fromkeys(("FRAME_TYPES", "DisplayLayout", "render_frame"), ".frames"),
    **dict.fromkeys(("CaptureError", "LogEntry", "Pacing", "match_captures_by_time", "plan_sequence", "read_log",
                     "run_session"), ".session"),
    **dict.fromkeys(("CALIBRATION_SPLIT", "ingest_session"), ".session_ingest"),
}
__all__ = sorted(_EXPORTS)
lazy_package(__name__, _EXPORTS)
