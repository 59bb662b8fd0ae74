"""Exposure-bracket plans for the low-light / well-lit protocol (S7-ISP style).

Each scene is shot from a tripod at the camera's automatic exposure ("well_lit") and at a quarter of
it ("low_light"), with the same ISO, aperture, focus, white balance and framing, raw + JPEG. Given the
metadata of a first auto shot, :func:`plan_brackets` lists the exposures to dial in, snapped to the
exposure times the camera supports, and the operator checklist.

References: E. Schwartz, R. Giryes, A. M. Bronstein, "DeepISP: Toward Learning an End-to-End Image
Processing Pipeline", IEEE TIP 2019 (the S7-ISP dataset protocol: each scene at the automatic
exposure and at 1/4 of it, everything else fixed).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from isp_bench.capture.session import CaptureError

DEFAULT_RATIO = 4.0

# The nominal 1/3-stop shutter series of interchangeable-lens cameras (seconds), 1/8000 s .. 30 s.
THIRD_STOP_TIMES: tuple[float, ...] = tuple(sorted(
    [30, 25, 20, 15, 13, 10, 8, 6, 5, 4, 3.2, 2.5, 2, 1.6, 1.3, 1, 0.8, 0.6, 0.5, 0.4, 0.3]
    + [1 / d for d in (4, 5, 6, 8, 10, 13, 15, 20, 25, 30, 40, 50, 60, 80, 100, 125, 160, 200, 250, 320, 400,
                       500, 640, 800, 1000, 1250, 1600, 2000, 2500, 3200, 4000, 5000, 6400, 8000)]))
# The nominal 1/2-stop series.
HALF_STOP_TIMES: tuple[float, ...] = tuple(sorted(
    [30, 20, 15, 10, 8, 6, 4, 3, 2, 1.5, 1, 0.7, 0.5, 0.35]
    + [1 / d for d in (4, 6, 8, 10, 15, 20, 30, 45, 60, 90, 125, 180, 250, 350, 500, 750, 1000, 1500, 2000,
                       3000, 4000, 6000, 8000)]))
TIME_SERIES = {"thirds": THIRD_STOP_TIMES, "halves": HALF_STOP_TIMES, "continuous": None}


def format_time(seconds: float) -> str:
    """Exposure time as a photographer writes it: ``1/250``, ``0.6``, ``2``."""
    if seconds >= 0.3:
        return f"{seconds:g}"
    return f"1/{round(1 / seconds):d}" if abs(1 / seconds - round(1 / seconds)) < 0.05 * (1 / seconds) \
        else str(Fraction(seconds).limit_denominator(100000))


def snap_exposure(seconds: float, supported: tuple[float, ...] | None, *, limits: tuple[float, float] | None = None
                  ) -> float:
    """The supported exposure time nearest to ``seconds`` in stops (log2). ``supported=None`` means
    a continuous range (phones' manual modes), clamped to ``limits`` when given."""
    if seconds <= 0:
        raise CaptureError(f"exposure time {seconds} s is not positive; the first shot's EXIF ExposureTime is wrong")
    if supported is None:
        lo, hi = limits or (0.0, math.inf)
        return float(min(max(seconds, lo), hi))
    return float(min(supported, key=lambda t: (abs(math.log2(t / seconds)), t)))


@dataclass
class Shot:
    label: str  # "well_lit" | "low_light"
    exposure_s: float
    iso: float | None
    fnumber: float | None
    ratio_to_auto: float  # auto exposure / this exposure

    @property
    def exposure_text(self) -> str:
        return format_time(self.exposure_s)


@dataclass
class BracketPlan:
    camera: str
    auto_exposure_s: float
    iso: float | None
    fnumber: float | None
    intended_ratio: float
    shots: list[Shot]
    snap_error_stops: float  # log2(achieved ratio / intended ratio)
    warnings: list[str] = field(default_factory=list)
    checklist: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_markdown(self) -> str:
        lines = [f"# Bracket plan: {self.camera}", "",
                 (f"First auto shot: {format_time(self.auto_exposure_s)} s, ISO {self.iso or '?'}, "
                  f"f/{self.fnumber or '?'}; intended ratio {self.intended_ratio:g}× "
                  f"(achieved {self.shots[0].exposure_s / self.shots[-1].exposure_s:.3f}×, "
                  f"{self.snap_error_stops:+.2f} stop from snapping)."), "",
                 "| shot | exposure | ISO | aperture | auto / this |", "|---|---|---|---|---|"]
        for s in self.shots:
            lines.append(f"| {s.label} | {s.exposure_text} s | {s.iso or '?'} | f/{s.fnumber or '?'} | {s.ratio_to_auto:.3f} |")
        if self.warnings:
            lines += ["", "## Warnings", ""] + [f"- {w}" for w in self.warnings]
        lines += ["", "## Operator checklist", ""] + [f"- [ ] {c}" for c in self.checklist]
        return "\n".join(lines) + "\n"


def first_shot_metadata(path: str | Path) -> dict[str, Any]:
    """exposure_s, iso, fnumber, make, model of a first auto shot (a raw file or a JPEG with EXIF)."""
    path = Path(path)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        from PIL import Image

        with Image.open(path) as im:
            exif = im.getexif().get_ifd(0x8769)
            base = im.getexif()
        t = exif.get(0x829A)
        return {"exposure_s": float(t) if t is not None else None, "iso": _num(exif.get(0x8827)),
                "fnumber": _num(exif.get(0x829D)), "make": base.get(0x010F), "model": base.get(0x0110)}
    from isp_bench.raw import read_raw

    cap = read_raw(path)
    return {"exposure_s": cap.exposure_s, "iso": cap.iso, "fnumber": cap.fnumber, "make": cap.make, "model": cap.model}


def _num(v) -> float | None:
    if v is None:
        return None
    if isinstance(v, (tuple, list)):
        v = v[0]
    return float(v)


CHECKLIST = (
    "Tripod locked; remote release, self-timer or tethering (no touching the camera between shots).",
    "Manual mode: exposure time, ISO and aperture set by hand; auto-ISO OFF; image stabilisation OFF on a tripod.",
    "Focus set once (AF on the first shot, then switch to MF / lock focus) and left untouched.",
    "White balance fixed (a preset, not AWB) so both JPEGs share it.",
    "Raw + JPEG (largest, finest); lens corrections and HDR/night modes OFF; phones: the app's RAW+JPEG mode.",
    "Scene static: no people, cars, trees in wind, flickering lights; say 'motion' in the notes otherwise.",
    "Shoot the well_lit frame first, then the low_light frame, then check both on the screen (histogram: no new clipping).",
    "Keep camera and computer clocks in sync (files are matched to scenes by time and order).",
    "After the session: `isp-bench capture session-ingest SESSION` then `isp-bench qa MANIFEST --root SESSION`.",
)


def plan_brackets(meta: dict[str, Any], *, ratio: float = DEFAULT_RATIO, times: str | tuple[float, ...] | None = "thirds",
                  limits: tuple[float, float] | None = None, handheld_limit_s: float = 1 / 30) -> BracketPlan:
    """The low-light / well-lit exposures from a first auto shot's metadata ``meta`` (exposure_s, iso,
    fnumber, make, model; see :func:`first_shot_metadata`): the auto exposure and the auto exposure ×
    1/``ratio`` at the same ISO and aperture, both snapped to ``times`` (``'thirds'``, ``'halves'``,
    ``'continuous'`` or an explicit tuple of supported times in seconds)."""
    auto = meta.get("exposure_s")
    if not auto:
        raise CaptureError("the first shot carries no exposure time (EXIF ExposureTime); shoot it in a mode that "
                           "records it, or pass --exposure")
    if ratio <= 1:
        raise CaptureError(f"bracket ratio {ratio} must be above 1 (the protocol uses {DEFAULT_RATIO:g})")
    supported = TIME_SERIES[times] if isinstance(times, str) else tuple(times) if times is not None else None
    well = snap_exposure(float(auto), supported, limits=limits)
    low = snap_exposure(well / ratio, supported, limits=limits)
    achieved = well / low
    iso, fnumber = meta.get("iso"), meta.get("fnumber")
    camera = " ".join(str(x) for x in (meta.get("make"), meta.get("model")) if x) or "camera"
    warnings = []
    err = math.log2(achieved / ratio)
    if abs(err) > 0.2:
        warnings.append(f"the camera's exposure steps give a ratio of {achieved:.2f}× ({err:+.2f} stop off {ratio:g}×); "
                        "the manifest records the ratio from EXIF, QA accepts it")
    if abs(math.log2(well / float(auto))) > 0.05:
        warnings.append(f"auto exposure {format_time(float(auto))} s is not a supported setting; use {format_time(well)} s")
    if low == well:
        warnings.append("low_light exposure equals well_lit: the camera cannot go shorter; lower the ISO or stop down")
    if well > handheld_limit_s:
        warnings.append(f"well_lit exposure {format_time(well)} s is longer than {format_time(handheld_limit_s)} s: tripod and remote "
                        "release are mandatory, and any subject motion will show (QA flags `motion`)")
    if iso is None or fnumber is None:
        warnings.append("the first shot lacks ISO or f-number in its EXIF; read them off the camera and keep them fixed")
    shots = [Shot("well_lit", well, iso, fnumber, float(auto) / well),
             Shot("low_light", low, iso, fnumber, float(auto) / low)]
    checklist = [f"Set ISO {iso:g} and f/{fnumber:g} (the first shot's values) and keep them for both frames." if iso and fnumber
                 else "Fix ISO and aperture at the first shot's values."] + list(CHECKLIST)
    return BracketPlan(camera, float(auto), iso, fnumber, ratio, shots, err, warnings, checklist)
