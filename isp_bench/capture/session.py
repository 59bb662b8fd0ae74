"""Monitor capture sessions: the slideshow sequence, its log, camera triggers and time matching.

A session shows, for every source image, a fiducial frame then the image, and calibration frames
(black, white, ColorChecker) at the start, every ``calibration_every`` images and at the end. Each
shown frame is one log row (``log.csv``): index, frame type, image id, source path, the time it went
up and how long it stayed, and the capture file stem. A camera photographs every frame:

- :class:`SimulatedTrigger`: the :class:`~isp_bench.capture.simcam.SimulatedCamera` photographs the
  rendered frame (tests, CI, dry runs);
- :class:`GPhoto2Trigger`: a tethered camera through ``gphoto2 --capture-image-and-download``;
- :class:`AdbTrigger`: an Android phone's camera app through ``adb shell input keyevent`` (the files
  are pulled afterwards and matched by time);
- :class:`ManualTrigger`: the operator presses the shutter; :func:`match_captures_by_time` assigns
  files to log rows from their EXIF capture time.

Session folder::

    session.json     session facts (kind, display, layout, pacing, camera, trigger, started_at)
    log.csv          one row per shown frame
    sources/         the source images as shown (PNG, the QA registers captures onto them)
    captures/        <stem>.dng (or another raw) + <stem>.jpg per frame
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from isp_bench.capture.frames import DisplayLayout, render_frame
from isp_bench.errors import IspBenchError
from isp_bench.files import atomic_write_text
from isp_bench.images import read_image, write_png

LOG_COLUMNS = ("index", "frame_type", "image_id", "source", "shown_at", "duration_s", "capture")
CALIBRATION = ("black", "white", "colorchecker")


class CaptureError(IspBenchError):
    """A capture rig could not do what was asked (missing tool, camera not answering, bad session)."""


@dataclass
class LogEntry:
    index: int
    frame_type: str
    image_id: str
    source: str
    shown_at: str  # ISO 8601, local clock of the display computer
    duration_s: float
    capture: str  # capture file stem ("" when files are matched later)

    @property
    def shown_time(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.shown_at)


@dataclass(frozen=True)
class Pacing:
    """Seconds a frame stays up before the trigger (``settle_s``: display and auto-exposure settle),
    and after it (``hold_s``: longest exposure plus the camera's write time). With manual triggering
    ``hold_s`` must leave the operator time to press; with EXIF times (1 s resolution) keep every
    frame up for at least 2 s so files can be matched by time."""

    settle_s: float = 0.7
    hold_s: float = 1.5


def plan_sequence(image_ids: list[str], calibration_every: int = 25) -> list[tuple[str, str]]:
    """The (frame_type, image_id) list of a session: calibration at the start, ``fiducials`` then
    ``image`` per source image, calibration every ``calibration_every`` images and at the end."""
    seq: list[tuple[str, str]] = [(t, "") for t in CALIBRATION]
    for i, image_id in enumerate(image_ids):
        seq += [("fiducials", image_id), ("image", image_id)]
        if calibration_every and (i + 1) % calibration_every == 0 and i + 1 < len(image_ids):
            seq += [(t, "") for t in CALIBRATION]
    seq += [(t, "") for t in CALIBRATION]
    return seq


# -- displays ------------------------------------------------------------------------------------

class Display(Protocol):
    def show(self, frame: np.ndarray) -> None: ...
    def close(self) -> None: ...


class OffscreenDisplay:
    """Headless display: keeps the last frame shown (and optionally all of them) in memory."""

    def __init__(self, keep: bool = False):
        self.keep = keep
        self.frames: list[np.ndarray] = []
        self.current: np.ndarray | None = None

    def show(self, frame: np.ndarray) -> None:
        self.current = frame
        if self.keep:
            self.frames.append(frame)

    def close(self) -> None:
        pass


class WindowDisplay:
    """A full-screen OpenCV window on the real monitor (needs a display server; not used by tests)."""

    NAME = "isp-bench monitor session"

    def __init__(self, screen: int = 0):
        import cv2

        self._cv2 = cv2
        cv2.namedWindow(self.NAME, cv2.WINDOW_NORMAL)
        cv2.setWindowProperty(self.NAME, cv2.WND_PROP_FULLSCREEN, cv2.WINDOW_FULLSCREEN)

    def show(self, frame: np.ndarray) -> None:
        self._cv2.imshow(self.NAME, frame[..., ::-1])
        self._cv2.waitKey(1)

    def close(self) -> None:
        self._cv2.destroyWindow(self.NAME)


# -- clocks ----------------------------------------------------------------------------------------

class RealClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


class SimClock:
    """A virtual clock for simulated sessions: sleeping advances it instantly."""

    def __init__(self, start: dt.datetime = dt.datetime(2026, 1, 1, 20, 0, 0)):
        self.t = start

    def now(self) -> dt.datetime:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += dt.timedelta(seconds=seconds)


# -- triggers ----------------------------------------------------------------------------------------

class Trigger(Protocol):
    name: str

    def fire(self, frame: np.ndarray, stem: str, when: dt.datetime) -> str:
        """Take one picture of ``frame``; return the capture stem ('' if files come later)."""


class SimulatedTrigger:
    """Photographs the rendered frame with a :class:`~isp_bench.capture.simcam.SimulatedCamera`."""

    name = "simulated"

    def __init__(self, camera, captures: Path):
        self.camera, self.captures = camera, Path(captures)

    def fire(self, frame: np.ndarray, stem: str, when: dt.datetime) -> str:
        self.captures.mkdir(parents=True, exist_ok=True)
        self.camera.photograph_frame(frame, self.captures, stem, when=when.replace(microsecond=0))
        return stem


def require_tool(tool: str, why: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise CaptureError(f"`{tool}` is not on PATH; it is needed {why}. Install it (e.g. `apt-get install {tool}`"
                           + (" / Android platform-tools" if tool == "adb" else "") + ") or use --trigger manual")
    return path


class GPhoto2Trigger:
    """Tethered camera: ``gphoto2 --capture-image-and-download`` writes raw (+JPEG, per the camera's
    quality setting) into ``captures/`` named after the log row."""

    name = "gphoto2"

    def __init__(self, captures: Path, timeout_s: float = 30.0):
        self.exe = require_tool("gphoto2", "to trigger a tethered camera")
        self.captures, self.timeout_s = Path(captures), timeout_s

    def fire(self, frame: np.ndarray, stem: str, when: dt.datetime) -> str:
        self.captures.mkdir(parents=True, exist_ok=True)
        cmd = [self.exe, "--capture-image-and-download", "--force-overwrite",
               "--filename", str(self.captures / f"{stem}.%C")]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout_s, check=False)
        if result.returncode != 0:
            raise CaptureError(f"gphoto2 failed for frame {stem}: {result.stderr.strip()[-400:]}; check the USB "
                               "connection and that no other program holds the camera")
        return stem


class AdbTrigger:
    """Android phone: presses the camera key (``KEYCODE_CAMERA``) in the open camera app (set it to
    RAW+JPEG and manual exposure). Files are pulled afterwards (``adb pull /sdcard/DCIM/Camera``) and
    matched to the log by capture time, so the phone's clock offset does not matter."""

    name = "adb"

    def __init__(self, serial: str | None = None, keycode: int = 27, timeout_s: float = 10.0):
        self.exe = require_tool("adb", "to trigger an Android phone")
        self.serial, self.keycode, self.timeout_s = serial, keycode, timeout_s

    def fire(self, frame: np.ndarray, stem: str, when: dt.datetime) -> str:
        cmd = [self.exe] + (["-s", self.serial] if self.serial else []) + \
              ["shell", "input", "keyevent", str(self.keycode)]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout_s, check=False)
        if result.returncode != 0:
            raise CaptureError(f"adb keyevent failed for frame {stem}: {result.stderr.strip()[-400:]}; "
                               "check `adb devices` and that the camera app is in front")
        return ""


class ManualTrigger:
    """The operator presses the shutter while the frame is up (a beep/console line says when)."""

    name = "manual"

    def __init__(self, announce: Callable[[str], None] | None = print):
        self.announce = announce

    def fire(self, frame: np.ndarray, stem: str, when: dt.datetime) -> str:
        if self.announce:
            self.announce(f"\a[{when:%H:%M:%S}] press the shutter now: {stem}")
        return ""


# -- the session ---------------------------------------------------------------------------------------

@dataclass
class SessionResult:
    folder: Path
    log: list[LogEntry]
    started_at: str
    seconds: float
    facts: dict = field(default_factory=dict)


def _load_source(path: Path) -> np.ndarray:
    image = read_image(path)
    if image.dtype != np.uint8:
        image = np.round(image.astype(np.float64) / np.iinfo(image.dtype).max * 255).astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    return image[..., :3]


def run_session(sources: Iterable[str | Path], folder: str | Path, *, layout: DisplayLayout,
                trigger_factory: Callable[[Path], Trigger], display: Display | None = None,
                pacing: Pacing = Pacing(), clock=None, calibration_every: int = 25,
                camera_facts: dict | None = None, progress: bool = True) -> SessionResult:
    """Run a monitor session: show every source image between calibration frames on ``display``
    (headless :class:`OffscreenDisplay` by default), fire the trigger for each frame, and write the
    session folder (log, facts, the sources as shown). The log is rewritten atomically after every
    frame, so an interrupted session leaves a valid log of what was shown."""
    folder = Path(folder)
    (folder / "sources").mkdir(parents=True, exist_ok=True)
    captures = folder / "captures"
    clock = clock or RealClock()
    display = display or OffscreenDisplay()
    trigger = trigger_factory(captures)
    images: dict[str, np.ndarray] = {}
    for src in sources:
        src = Path(src)
        image_id = src.stem
        if image_id in images:
            raise CaptureError(f"two source images share the id {image_id!r} ({src}); rename one")
        images[image_id] = _load_source(src)
        write_png(folder / "sources" / f"{image_id}.png", images[image_id])
    if not images:
        raise CaptureError("no source images given; pass image files or a folder of them")
    seq = plan_sequence(list(images), calibration_every)
    started = clock.now()
    t0 = time.perf_counter()
    facts = {"kind": "monitor", "started_at": started.isoformat(timespec="seconds"),
             "display": {"height": layout.height, "width": layout.width, "margin": layout.margin,
                         "marker_frac": layout.marker_frac, "image_rect": list(layout.image_rect)},
             "marker_dictionary": "DICT_4X4_50", "pacing": asdict(pacing), "trigger": trigger.name,
             "calibration_every": calibration_every, "camera": camera_facts or {},
             "images": len(images), "frames": len(seq)}
    atomic_write_text(folder / "session.json", json.dumps(facts, indent=1, sort_keys=True) + "\n")
    log: list[LogEntry] = []
    from tqdm import tqdm

    for index, (frame_type, image_id) in enumerate(tqdm(seq, desc="frames", disable=not progress)):
        frame = render_frame(layout, frame_type, images.get(image_id))
        display.show(frame)
        shown = clock.now()
        clock.sleep(pacing.settle_s)
        stem = f"{index:05d}_{frame_type}" + (f"_{image_id}" if image_id else "")
        got = trigger.fire(frame, stem, clock.now())
        clock.sleep(pacing.hold_s)
        duration = (clock.now() - shown).total_seconds()
        log.append(LogEntry(index, frame_type, image_id, f"sources/{image_id}.png" if image_id else "",
                            shown.isoformat(timespec="milliseconds"), round(duration, 3), got))
        write_log(folder / "log.csv", log)
    display.close()
    return SessionResult(folder, log, facts["started_at"], time.perf_counter() - t0, facts)


def write_log(path: Path, log: list[LogEntry]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(LOG_COLUMNS)
    for e in log:
        writer.writerow([e.index, e.frame_type, e.image_id, e.source, e.shown_at, e.duration_s, e.capture])
    atomic_write_text(path, buf.getvalue())


def read_log(path: str | Path) -> list[LogEntry]:
    path = Path(path)
    if not path.is_file():
        raise CaptureError(f"{path}: no session log; a session folder holds log.csv written by `isp-bench capture monitor`")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    missing = set(LOG_COLUMNS) - set(rows[0] if rows else LOG_COLUMNS)
    if missing:
        raise CaptureError(f"{path}: log lacks columns {sorted(missing)}")
    return [LogEntry(int(r["index"]), r["frame_type"], r["image_id"], r["source"], r["shown_at"],
                     float(r["duration_s"]), r["capture"]) for r in rows]


def match_captures_by_time(captures: list[tuple[str, dt.datetime]], log: list[LogEntry], *,
                           clock_offset_s: float | None = None, tolerance_s: float = 1.0
                           ) -> tuple[dict[int, str], float]:
    """Assign capture files to log rows by capture time (manual / adb triggering).

    ``captures``: (stem, camera time). The camera clock may be off the display computer's by an
    unknown amount: unless ``clock_offset_s`` (camera − computer) is given, it is estimated as the
    offset that puts the most captures inside a frame's display interval (ties: the smallest
    offset). A capture at camera time t belongs to the frame shown over [shown_at, shown_at +
    duration] containing t − offset (± ``tolerance_s``, EXIF times have 1 s resolution); a frame
    keeps the first capture that falls on it. Returns ({log index: stem}, offset used).
    """
    if not captures or not log:
        return {}, clock_offset_s or 0.0
    starts = np.array([e.shown_time.timestamp() for e in log])
    ends = starts + np.array([e.duration_s for e in log])
    times = np.array([t.timestamp() for _, t in captures])

    def assign(offset: float) -> dict[int, str]:
        out: dict[int, str] = {}
        for (stem, _), t in sorted(zip(captures, times), key=lambda p: p[1]):
            u = t - offset
            inside = np.where((u >= starts - tolerance_s) & (u <= ends + tolerance_s))[0]
            free = [i for i in inside if log[i].index not in out]
            if free:  # the frame whose centre is nearest
                best = min(free, key=lambda i: abs(u - (starts[i] + ends[i]) / 2))
                out[log[best].index] = stem
        return out

    if clock_offset_s is None:
        mids = (starts + ends) / 2  # the first and the last capture each belong to some frame
        candidates = {round(float(t - m), 1) for t in (times.min(), times.max()) for m in mids}
        scored = [(len(assign(c)), -abs(c), c) for c in candidates]
        clock_offset_s = max(scored)[2]
    return assign(clock_offset_s), float(clock_offset_s)
