"""Simulated capture sessions (no hardware): a monitor session photographed by the
:class:`~isp_bench.capture.simcam.SimulatedCamera`, and a bracket session with optional injected
faults. Used by ``isp-bench capture monitor --simulate``, the tests and dry runs of the protocol."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from isp_bench.capture.frames import DisplayLayout
from isp_bench.capture.session import (
    LogEntry,
    Pacing,
    SessionResult,
    SimClock,
    SimulatedTrigger,
    run_session,
    write_log,
)
from isp_bench.capture.simcam import SimulatedCamera, scene_irradiance
from isp_bench.files import atomic_write_text

DEFAULT_HOMOGRAPHY = np.array([[0.80, 0.03, 30.0], [-0.02, 0.78, 25.0], [1e-5, 2e-5, 1.0]])


def simulate_monitor_session(folder: str | Path, sources: list[str | Path], *, layout: DisplayLayout | None = None,
                             camera: SimulatedCamera | None = None, calibration_every: int = 25,
                             progress: bool = False) -> SessionResult:
    """Run a headless monitor session whose trigger is the simulated camera (virtual clock, no sleeping)."""
    layout = layout or DisplayLayout(256, 384)
    camera = camera or SimulatedCamera(layout.height, layout.width, DEFAULT_HOMOGRAPHY)
    facts = {"simulated": True, "homography_display_to_sensor": np.round(camera.homography, 12).tolist(),
             "vignetting": camera.vignetting, "model": camera.sensor.name, "iso": camera.iso,
             "exposure_s": camera.exposure_s, "fnumber": camera.fnumber}
    return run_session(sources, folder, layout=layout, trigger_factory=lambda d: SimulatedTrigger(camera, d),
                       pacing=Pacing(0.5, 1.5), clock=SimClock(), calibration_every=calibration_every,
                       camera_facts=facts, progress=progress)


@dataclass
class BracketScene:
    """One simulated bracket scene and the faults to inject into its low_light frame."""

    name: str
    source: str = "astronaut"
    seed: int = 0
    motion_px: tuple[int, int] = (0, 0)  # (dy, dx) an object in the middle moves between the frames
    exif_ratio: float | None = None  # the ratio the camera records (None: as intended)
    actual_ratio: float | None = None  # the ratio the light really changed by (None: as recorded)
    blur_sigma: float = 0.0  # camera shake / focus blur in the low_light frame
    scene_gain: float = 1.0  # >1: a brighter scene than the auto exposure expected (clipping)


def simulate_bracket_session(folder: str | Path, scenes: list[BracketScene], *, ratio: float = 4.0,
                             height: int = 256, width: int = 384, seed: int = 0) -> Path:
    """Write a bracket session (captures/, log.csv, session.json) of ``scenes`` photographed with the
    simulated camera at the auto exposure and at 1/``ratio`` of it."""
    folder = Path(folder)
    captures = folder / "captures"
    captures.mkdir(parents=True, exist_ok=True)
    cam = SimulatedCamera(height, width, np.eye(3), vignetting=0.2, seed=seed, iso=200, exposure_s=1 / 30)
    when = dt.datetime(2026, 2, 1, 18, 0, 0)
    log: list[LogEntry] = []
    for i, sc in enumerate(scenes):
        irr, white = scene_irradiance(sc.source, (height, width), seed=sc.seed, peak=0.85)
        irr = irr * sc.scene_gain
        exif = sc.exif_ratio or ratio
        actual = sc.actual_ratio or exif
        stem = f"{2 * i:04d}_{sc.name}_well_lit"
        cam.photograph(irr, captures, stem, when=when, white_rgb=white)
        log.append(LogEntry(2 * i, "well_lit", sc.name, "", when.isoformat(), 1.0, stem))
        when += dt.timedelta(seconds=3)
        moved = irr.copy()
        dy, dx = sc.motion_px
        if dy or dx:  # an object (the central third) moves
            y0, y1, x0, x1 = height // 3, 2 * height // 3, width // 3, 2 * width // 3
            moved[y0 + dy : y1 + dy, x0 + dx : x1 + dx] = irr[y0:y1, x0:x1]
        stem = f"{2 * i + 1:04d}_{sc.name}_low_light"
        cam.photograph(moved, captures, stem, when=when, exposure_scale=1 / actual,
                       exif_exposure_s=cam.exposure_s / exif, extra_blur=sc.blur_sigma, white_rgb=white)
        log.append(LogEntry(2 * i + 1, "low_light", sc.name, "", when.isoformat(), 1.0, stem))
        when += dt.timedelta(seconds=20)
    write_log(folder / "log.csv", log)
    facts = {"kind": "brackets", "ratio": ratio, "started_at": log[0].shown_at if log else None,
             "camera": {"simulated": True, "model": cam.sensor.name, "iso": cam.iso, "exposure_s": cam.exposure_s,
                        "fnumber": cam.fnumber}, "scenes": len(scenes)}
    atomic_write_text(folder / "session.json", json.dumps(facts, indent=1, sort_keys=True) + "\n")
    return folder
