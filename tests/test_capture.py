"""Capture rigs: slideshow frames and log (headless), triggers' time matching, bracket plans and
session ingest, all with the simulated camera from isp_bench.synth (real DNG + JPEG files)."""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from isp_bench.capture import brackets
from isp_bench.capture.frames import DisplayLayout, render_frame
from isp_bench.capture.session import (
    LogEntry,
    OffscreenDisplay,
    Pacing,
    SimClock,
    SimulatedTrigger,
    match_captures_by_time,
    plan_sequence,
    read_log,
    run_session,
)
from isp_bench.capture.session_ingest import ingest_session
from isp_bench.capture.simcam import SimulatedCamera
from isp_bench.capture.simulate import (
    DEFAULT_HOMOGRAPHY,
    BracketScene,
    simulate_bracket_session,
)
from isp_bench.images import read_image, write_png
from isp_bench.manifest import read_manifest
from isp_bench.qa.registration import detect_fiducials
from isp_bench.raw import read_raw

cv2.setNumThreads(1)
LAYOUT = DisplayLayout(256, 384)


def _sources(folder: Path) -> list[Path]:
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name in ("astronaut", "coffee", "chelsea"):
        img = cv2.resize(getattr(data, name)()[..., :3], (300, 200), interpolation=cv2.INTER_AREA)
        write_png(folder / f"{name}.png", img)
        out.append(folder / f"{name}.png")
    return out


@pytest.fixture(scope="module")
def monitor_session(tmp_path_factory):
    """A headless monitor session of 3 images photographed by the simulated camera, frames kept."""
    tmp = tmp_path_factory.mktemp("monitor")
    sources = _sources(tmp / "src")
    display = OffscreenDisplay(keep=True)
    camera = SimulatedCamera(256, 384, DEFAULT_HOMOGRAPHY, seed=3)
    result = run_session(sources, tmp / "session", layout=LAYOUT, trigger_factory=lambda d: SimulatedTrigger(camera, d),
                         display=display, pacing=Pacing(0.5, 1.5), clock=SimClock(), progress=False)
    return tmp / "session", result, display, sources


def test_frames_are_what_the_layout_says():
    black, white = render_frame(LAYOUT, "black"), render_frame(LAYOUT, "white")
    assert black.shape == (256, 384, 3) and black.max() == 0 and white.min() == 255
    fid = render_frame(LAYOUT, "fiducials")
    found = detect_fiducials(fid)
    assert sorted(found) == [0, 1, 2, 3]
    expected = LAYOUT.marker_corners()
    err = max(np.abs(found[i] - expected[i]).max() for i in found)
    assert err < 0.15, f"rendered marker corners off the layout by {err:.3f} px"
    chart = render_frame(LAYOUT, "colorchecker")
    assert len(np.unique(chart.reshape(-1, 3), axis=0)) == 25  # 24 patches + black surround
    # the image frame is exactly the fit homography: a 1-pixel dot lands where source_to_display says
    src = np.zeros((100, 150, 3), np.uint8)
    src[40, 90] = 255
    frame = render_frame(LAYOUT, "image", src).astype(np.float64)[..., 0]
    cx = (frame * np.arange(384)[None]).sum() / frame.sum()
    cy = (frame * np.arange(256)[:, None]).sum() / frame.sum()
    px = LAYOUT.source_to_display((100, 150)) @ np.array([90, 40, 1.0])
    assert abs(cx - px[0]) < 0.3 and abs(cy - px[1]) < 0.3


def test_sequence_puts_every_image_between_calibration_frames():
    seq = plan_sequence(["a", "b", "c"], calibration_every=2)
    types = [t for t, _ in seq]
    assert types[:3] == ["black", "white", "colorchecker"] and types[-3:] == ["black", "white", "colorchecker"]
    for i, (t, image_id) in enumerate(seq):
        if t == "image":
            assert seq[i - 1] == ("fiducials", image_id)
    assert [i for t, i in seq if t == "image"] == ["a", "b", "c"]
    assert types.count("black") == 3  # start, after 2 images, end


def test_headless_session_log_matches_what_was_shown(monitor_session):
    folder, _, display, sources = monitor_session
    log = read_log(folder / "log.csv")
    assert len(log) == len(display.frames) == len(plan_sequence(["astronaut", "coffee", "chelsea"])) == 12
    assert [(e.frame_type, e.image_id) for e in log] == plan_sequence(["astronaut", "coffee", "chelsea"])
    shown_sources = {p.stem: read_image(folder / "sources" / f"{p.stem}.png") for p in sources}
    for entry, frame in zip(log, display.frames):
        # re-rendering each log row gives the frame that was on screen, byte for byte
        assert np.array_equal(render_frame(LAYOUT, entry.frame_type, shown_sources.get(entry.image_id)), frame)
        assert entry.duration_s == pytest.approx(2.0)
        raw = read_raw(folder / "captures" / f"{entry.capture}.dng")
        assert (folder / "captures" / f"{entry.capture}.jpg").is_file()
        # the camera fired while the frame was up (EXIF time, 1 s resolution)
        shot = dt.datetime.fromisoformat(raw.datetime)
        assert entry.shown_time - dt.timedelta(seconds=1) <= shot <= entry.shown_time + dt.timedelta(seconds=entry.duration_s)
    times = [e.shown_time for e in log]
    assert times == sorted(times)
    facts = json.loads((folder / "session.json").read_text())
    assert facts["kind"] == "monitor" and facts["frames"] == 12 and facts["trigger"] == "simulated"


def test_manual_captures_are_matched_to_the_log_by_time():
    start = dt.datetime(2026, 3, 1, 21, 0, 0)
    log = [LogEntry(i, "image", f"im{i}", "", (start + dt.timedelta(seconds=3 * i)).isoformat(), 3.0, "")
           for i in range(10)]
    rng = np.random.default_rng(0)
    offset = 137.0  # the camera clock runs 137 s ahead
    shots = [(f"IMG_{i:04d}", start + dt.timedelta(seconds=3 * i + 1 + offset + float(rng.uniform(0, 1))))
             for i in range(10) if i != 4]  # the operator missed frame 4
    shots = [(s, t.replace(microsecond=0)) for s, t in shots]
    matched, est = match_captures_by_time(shots, log)
    assert abs(est - offset) <= 1.0
    assert matched == {i: f"IMG_{i:04d}" for i in range(10) if i != 4}
    matched2, used = match_captures_by_time(shots, log, clock_offset_s=offset)
    assert used == offset and matched2 == matched


def test_manual_session_ingest_matches_renamed_files_by_time(monitor_session, tmp_path):
    folder = tmp_path / "manual"
    shutil.copytree(monitor_session[0], folder)
    with open(folder / "log.csv", newline="") as f:
        log_rows = list(csv.DictReader(f))
    for n, row in enumerate(log_rows):  # as a manual session: camera file names, no stems in the log
        for ext in (".dng", ".jpg"):
            (folder / "captures" / f"{row['capture']}{ext}").rename(folder / "captures" / f"IMG_{n + 100:04d}{ext}")
        row["capture"] = ""
    with open(folder / "log.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(log_rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(log_rows)
    manifest = ingest_session(folder)
    rows = {r["input_path"]: r for r in manifest.rows()}
    for n, row in enumerate(log_rows):
        cap = json.loads(rows[f"captures/IMG_{n + 100:04d}.dng"]["extra"])["capture"]
        assert cap["log_index"] == n and cap["frame_type"] == row["frame_type"]
        assert cap["clock_offset_s"] == pytest.approx(0.0, abs=1.0)


def test_monitor_session_ingest_carries_the_session_facts(monitor_session, tmp_path):
    folder = monitor_session[0]
    manifest = ingest_session(folder, tmp_path / "m.parquet")
    rows = manifest.rows()
    assert len(rows) == 12 and manifest.dataset == "pairs"
    assert manifest.meta["source"]["session"]["kind"] == "monitor"
    images = [r for r in rows if json.loads(r["extra"])["capture"]["frame_type"] == "image"]
    assert len(images) == 3 and all("calibration_frame" not in r["flags"] for r in images)
    assert sum("calibration_frame" in r["flags"] for r in rows) == 9
    by_id = {r["pair_id"]: r for r in rows}
    for r in images:
        cap = json.loads(r["extra"])["capture"]
        fid = by_id[cap["fiducials_pair"]]
        assert json.loads(fid["extra"])["capture"]["frame_type"] == "fiducials"
        assert fid["scene"] == r["scene"] == f"session/{cap['image_id']}" and fid["split"] == "calibration"
        assert cap["source"] == f"sources/{cap['image_id']}.png" and r["subset"] == "monitor"
        assert r["target_path"].endswith(".jpg") and r["role"] == "mimic_isp"


def test_a_published_session_card_explains_its_calibration_frames(monitor_session, tmp_path):
    """A fiducial frame shares its image's scene but sits in the calibration split: no leak between train, val
    and test, and the card says what the calibration_frame flag means."""
    from isp_bench.hub import publish, read_card

    ingest_session(monitor_session[0], tmp_path / "m.parquet")
    _, body = read_card(publish(tmp_path / "m.parquet", monitor_session[0], tmp_path / "hf", progress=False,
                                licence="cc0-1.0").folder)
    assert "No scene lies in more than one of train, val and test" in body
    assert "| `calibration_frame` | 9 | a capture session's black, white, ColorChecker or fiducial frame" in body


def test_calibration_frames_are_in_no_split_and_leave_the_real_splits_alone(monitor_session, tmp_path):
    from isp_bench.datasets._common import hash_split
    from isp_bench.datasets.pairs import SPLIT_FRACTIONS, SPLIT_SALT

    rows = ingest_session(monitor_session[0], tmp_path / "m.parquet").rows()
    frame_type = {r["pair_id"]: json.loads(r["extra"])["capture"]["frame_type"] for r in rows}
    calib = [r for r in rows if "calibration_frame" in r["flags"]]
    real = [r for r in rows if "calibration_frame" not in r["flags"]]
    # kept in the manifest, in a split of their own: no train/val/test selection can pick them up
    assert sorted(frame_type[r["pair_id"]] for r in calib) == ["black"] * 2 + ["colorchecker"] * 2 + \
        ["fiducials"] * 3 + ["white"] * 2
    assert {r["split"] for r in calib} == {"calibration"}
    for split in ("train", "val", "test"):
        assert all(frame_type[r["pair_id"]] == "image" for r in rows if r["split"] == split)
    # the real pairs keep the hash split of their scene, frozen
    assert {r["scene"]: r["split"] for r in real} == {
        s: hash_split(s, SPLIT_SALT, SPLIT_FRACTIONS) for s in ("session/astronaut", "session/coffee", "session/chelsea")}
    assert {r["scene"]: r["split"] for r in real} == {
        "session/astronaut": "train", "session/coffee": "val", "session/chelsea": "train"}
    # the same session without its calibration frames (files and log rows gone): the same splits
    folder = tmp_path / "no_calibration" / "session"
    shutil.copytree(monitor_session[0], folder)
    with open(folder / "log.csv", newline="") as f:
        log_rows = list(csv.DictReader(f))
    for row in log_rows:
        if row["frame_type"] != "image":
            for ext in (".dng", ".jpg"):
                (folder / "captures" / f"{row['capture']}{ext}").unlink()
    with open(folder / "log.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(log_rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(r for r in log_rows if r["frame_type"] == "image")
    alone = ingest_session(folder).rows()
    assert len(alone) == 3 and not any("calibration_frame" in r["flags"] for r in alone)
    assert {r["pair_id"]: r["split"] for r in alone} == {r["pair_id"]: r["split"] for r in real}


@pytest.mark.parametrize("argv, message", [
    (["--exposure", "0.01", "--times", "foo"], "--times 'foo': give thirds, halves, continuous or comma-separated"),
    (["--exposure", "-1"], "--exposure -1.0: an exposure time is a positive number of seconds"),
])
def test_bracket_plan_arguments_are_checked_in_one_line(argv, message, capsys):
    from isp_bench.cli import main

    assert main(["capture", "plan", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"isp-bench: error: {message}") and err.count("\n") == 1


def test_bracket_plan_snaps_to_supported_times(tmp_path):
    plan = brackets.plan_brackets({"exposure_s": 1 / 60, "iso": 200, "fnumber": 2.8, "make": "X", "model": "Y"})
    well, low = plan.shots
    assert (well.label, low.label) == ("well_lit", "low_light")
    assert well.exposure_s == pytest.approx(1 / 60) and low.exposure_s == pytest.approx(1 / 250)
    assert well.iso == low.iso == 200 and well.fnumber == low.fnumber == 2.8
    assert plan.snap_error_stops == pytest.approx(math.log2((250 / 60) / 4))
    assert brackets.plan_brackets({"exposure_s": 1 / 60}, times="continuous").shots[1].exposure_s == pytest.approx(1 / 240)
    assert brackets.plan_brackets({"exposure_s": 0.5}, times="halves").shots[1].exposure_s == pytest.approx(1 / 8)
    assert brackets.snap_exposure(1 / 37, brackets.THIRD_STOP_TIMES) == pytest.approx(1 / 40)
    md = plan.to_markdown()
    assert "1/250 s" in md and "auto-ISO OFF" in md and len(plan.checklist) >= 8
    # from a real first shot (DNG written by the simulated camera)
    cam = SimulatedCamera(64, 96, np.eye(3), iso=400, exposure_s=1 / 30, fnumber=1.8)
    raw, jpg = cam.photograph(np.full((64, 96, 3), 0.3), tmp_path, "first", when=dt.datetime(2026, 1, 1))
    for path in (raw, jpg):
        meta = brackets.first_shot_metadata(path)
        assert meta["exposure_s"] == pytest.approx(1 / 30) and meta["iso"] == 400 and meta["fnumber"] == pytest.approx(1.8)
    p = brackets.plan_brackets(brackets.first_shot_metadata(raw))
    assert p.shots[1].exposure_s == pytest.approx(1 / 125) and any("tripod" in w for w in p.warnings) is False


def test_bracket_session_ingest_pairs_low_light_with_the_well_lit_jpeg(tmp_path):
    folder = simulate_bracket_session(tmp_path / "b", [BracketScene("s1", "coffee", 1), BracketScene("s2", "chelsea", 2)],
                                      height=64, width=96)
    (folder / "log.csv").unlink()  # no log kept: derived from capture order and exposure times
    manifest = ingest_session(folder)
    rows = {r["pair_id"]: r for r in manifest.rows()}
    assert len(rows) == 6
    low = rows["b/scene_0001/low_light"]  # scene names come from the derived log
    assert low["role"] == "low_light" and low["exposure_ratio"] == pytest.approx(4.0)
    assert low["input_path"].endswith("_s1_low_light.dng") and low["target_path"].endswith("_s1_well_lit.jpg")
    cap = json.loads(low["extra"])["capture"]
    assert cap["bracket"] == "low_light" and cap["intended_ratio"] == 4.0
    assert rows[cap["partner_pair"]]["input_path"].endswith("_s1_well_lit.dng")
    assert (folder / "log.csv").is_file() and read_manifest(folder / "manifest.parquet").content_hash


def test_hardware_triggers_say_clearly_when_their_tool_is_missing(monkeypatch, tmp_path):
    from isp_bench.capture.session import AdbTrigger, CaptureError, GPhoto2Trigger

    monkeypatch.setenv("PATH", str(tmp_path))  # an empty PATH: neither gphoto2 nor adb
    with pytest.raises(CaptureError, match="gphoto2.*not on PATH.*--trigger manual"):
        GPhoto2Trigger(tmp_path)
    with pytest.raises(CaptureError, match="adb.*not on PATH"):
        AdbTrigger()
