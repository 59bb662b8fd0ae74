"""Pair QA against the simulated camera's known truth: monitor captures under a known homography,
vignetting and noise registered back within 0.5 px; injected motion, wrong exposure ratios, blur,
clipping and a shifted target flagged; clean pairs not flagged."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from isp_bench.capture.frames import DisplayLayout, render_frame
from isp_bench.capture.session_ingest import ingest_session
from isp_bench.capture.simcam import SimulatedCamera
from isp_bench.capture.simulate import (
    DEFAULT_HOMOGRAPHY,
    BracketScene,
    simulate_bracket_session,
    simulate_monitor_session,
)
from isp_bench.images import read_image, write_jpeg, write_png
from isp_bench.manifest import read_manifest
from isp_bench.models.classic import render_capture
from isp_bench.qa import QA_FLAGS, qa_manifest
from isp_bench.qa.registration import (
    homography_error_px,
    monitor_homography,
)
from isp_bench.raw import read_raw

cv2.setNumThreads(1)
LAYOUT = DisplayLayout(256, 384)


def _grid(layout: DisplayLayout, step: int = 8) -> np.ndarray:
    top, left, h, w = layout.image_rect
    yy, xx = np.mgrid[top : top + h : step, left : left + w : step]
    return np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float64)


@pytest.fixture(scope="module")
def monitor_qa(tmp_path_factory):
    from skimage import data

    tmp = tmp_path_factory.mktemp("monitor_qa")
    sources = []
    for name in ("astronaut", "coffee", "chelsea"):
        img = cv2.resize(getattr(data, name)()[..., :3], (300, 200), interpolation=cv2.INTER_AREA)
        write_png(tmp / f"{name}.png", img)
        sources.append(tmp / f"{name}.png")
    folder = tmp / "session"
    simulate_monitor_session(folder, sources, layout=LAYOUT,
                             camera=SimulatedCamera(256, 384, DEFAULT_HOMOGRAPHY, vignetting=0.3, seed=5))
    ingest_session(folder)
    result = qa_manifest(folder / "manifest.parquet", folder, tmp / "checked.parquet", report=tmp / "report")
    return folder, result, tmp


@pytest.mark.parametrize("homography,vignetting,seed", [
    (DEFAULT_HOMOGRAPHY, 0.3, 1),
    (np.array([[0.74, -0.06, 52.0], [0.05, 0.76, 18.0], [-4e-5, 6e-5, 1.0]]), 0.45, 2),  # rotated, keystoned
])
def test_fiducial_homography_within_half_a_pixel(tmp_path, homography, vignetting, seed):
    cam = SimulatedCamera(256, 384, homography, vignetting=vignetting, seed=seed)
    cam.photograph_frame(render_frame(LAYOUT, "fiducials"), tmp_path, "fid", when=dt.datetime(2026, 1, 1))
    render, crop = render_capture(read_raw(tmp_path / "fid.dng"), "bilinear")
    assert (crop.top, crop.left) == (0, 0)
    reg = monitor_homography(render, LAYOUT)
    assert reg.markers_found == 4 and reg.ecc_refined
    mean, worst = homography_error_px(reg.display_to_capture, homography, _grid(LAYOUT))
    assert worst < 0.5, f"registration error mean {mean:.3f} px, max {worst:.3f} px"
    assert mean < 0.25


def test_monitor_session_registered_onto_the_sources(monitor_qa):
    folder, result, _ = monitor_qa
    rows = {r["pair_id"]: r for r in result.rows}
    images = [r for r in rows.values() if json.loads(r["extra"])["capture"]["frame_type"] == "image"]
    assert len(images) == 3
    for row in images:
        q = json.loads(row["extra"])["qa"]
        h_dc = np.array(q["monitor"]["display_to_capture"])
        _, worst = homography_error_px(h_dc, DEFAULT_HOMOGRAPHY, _grid(LAYOUT))
        assert worst < 0.5, f"{row['pair_id']}: homography off by up to {worst:.3f} px"
        # what is left after warping onto the source image is sub-pixel too
        assert q["monitor"]["residual"]["max_displacement_px"] < 1.0
        assert q["monitor"]["markers_found"] == 4
        # the source→capture homography maps source pixels where the true optics put them
        source = read_image(folder / json.loads(row["extra"])["capture"]["source"])
        h_true = DEFAULT_HOMOGRAPHY @ LAYOUT.source_to_display(source.shape[:2])
        pts = np.stack(np.meshgrid(np.arange(0, 300, 10.0), np.arange(0, 200, 10.0)), -1).reshape(-1, 2)
        assert homography_error_px(np.array(q["monitor"]["source_to_capture"]), h_true, pts)[1] < 0.5
        assert q["flags"] == [] and not set(row["flags"]) & set(QA_FLAGS)
        assert q["registration"]["max_displacement_px"] < 0.5  # raw vs its own JPEG: the same sensor grid
    assert all(not v for v in result.flagged.values())


def test_monitor_qa_reports_homographies_in_sensor_coordinates_for_any_cfa_phase(tmp_path):
    """A GRBG sensor: the classic rendering is cropped one column to RGGB phase; the stored homography
    is still in the raw file's pixel coordinates."""
    from skimage import data

    from isp_bench.synth.sensor import SensorSpec

    img = cv2.resize(data.astronaut()[..., :3], (300, 200), interpolation=cv2.INTER_AREA)
    write_png(tmp_path / "astro.png", img)
    cam = SimulatedCamera(256, 384, DEFAULT_HOMOGRAPHY, sensor=SensorSpec(cfa="GRBG"), seed=7)
    simulate_monitor_session(tmp_path / "s", [tmp_path / "astro.png"], layout=LAYOUT, camera=cam)
    ingest_session(tmp_path / "s")
    result = qa_manifest(tmp_path / "s" / "manifest.parquet", tmp_path / "s")
    row = next(r for r in result.rows if r["pair_id"].endswith("image_astro"))
    q = json.loads(row["extra"])["qa"]
    assert homography_error_px(np.array(q["monitor"]["display_to_capture"]), DEFAULT_HOMOGRAPHY, _grid(LAYOUT))[1] < 0.5
    assert q["flags"] == []


def test_qa_writes_a_valid_manifest_and_a_report(monitor_qa):
    folder, result, tmp = monitor_qa
    checked = read_manifest(tmp / "checked.parquet")
    assert len(checked) == 12 and checked.content_hash == result.manifest.content_hash
    original = read_manifest(folder / "manifest.parquet")  # --out given: the input is untouched
    assert all("qa" not in json.loads(r["extra"]) for r in original.rows())
    assert all("qa" in json.loads(r["extra"]) and "capture" in json.loads(r["extra"]) for r in checked.rows())
    index = (tmp / "report" / "index.md").read_text()
    assert "session" in index
    page = (tmp / "report" / "session.md").read_text()
    assert "worst pairs" in page
    images = sorted((tmp / "report" / "images").glob("*.png"))
    assert len(images) == 3 and read_image(images[0]).shape[1] > 384


@pytest.fixture(scope="module")
def bracket_qa(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("brackets")
    scenes = [BracketScene("clean1", "astronaut", 1), BracketScene("clean2", "coffee", 2),
              BracketScene("clean3", "chelsea", 3),
              BracketScene("motion", "astronaut", 4, motion_px=(3, 5)),
              BracketScene("ratio", "coffee", 5, exif_ratio=2.0),
              BracketScene("light", "chelsea", 6, actual_ratio=6.0),
              BracketScene("blur", "rocket", 7, blur_sigma=2.0),
              BracketScene("clip", "astronaut", 8, scene_gain=1.6),
              BracketScene("shifted", "coffee", 9)]
    folder = simulate_bracket_session(tmp / "brackets", scenes)
    # a JPEG that does not sit on its raw: shifted (2.3, -1.7) px and rotated 0.3°
    jpg = next((folder / "captures").glob("*_shifted_well_lit.jpg"))
    img = read_image(jpg)
    m = cv2.getRotationMatrix2D(((img.shape[1] - 1) / 2, (img.shape[0] - 1) / 2), 0.3, 1.0)
    m[:, 2] += (2.3, -1.7)
    write_jpeg(jpg, cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), flags=cv2.INTER_CUBIC,
                                   borderMode=cv2.BORDER_REFLECT), quality=95)
    ingest_session(folder)
    result = qa_manifest(folder / "manifest.parquet", folder, report=tmp / "report")
    rows = {r["pair_id"]: r for r in read_manifest(folder / "manifest.parquet").rows()}
    return rows, result, m


def _rows_of(rows, scene):
    return {pid: r for pid, r in rows.items() if f"_{scene}_" in pid or f"/{scene}/" in pid}


def test_clean_bracket_pairs_are_not_flagged(bracket_qa):
    rows, _, _ = bracket_qa
    for scene in ("clean1", "clean2", "clean3"):
        scene_rows = _rows_of(rows, scene)
        assert len(scene_rows) == 3
        for pid, r in scene_rows.items():
            assert not set(r["flags"]) & set(QA_FLAGS), f"{pid} flagged {r['flags']}"
            q = json.loads(r["extra"])["qa"]
            assert q["registration"]["max_displacement_px"] < 0.5
        low = rows[f"brackets/{scene}/low_light"]
        e = json.loads(low["extra"])["qa"]["exposure"]
        assert e["exif"] == pytest.approx(4.0) and e["measured"] == pytest.approx(4.0, rel=0.03)


@pytest.mark.parametrize("scene,pair,flag", [
    ("motion", "brackets/motion/low_light", "motion"),
    ("ratio", "brackets/ratio/low_light", "exposure_mismatch"),
    ("light", "brackets/light/low_light", "exposure_mismatch"),
    ("blur", "brackets/blur/low_light", "blurred"),
    ("clip", "_clip_well_lit", "clipped"),
    ("shifted", "_shifted_well_lit", "misaligned"),
])
def test_injected_faults_are_flagged(bracket_qa, scene, pair, flag):
    rows, result, _ = bracket_qa
    matches = [pid for pid in rows if pid.endswith(pair)]
    assert len(matches) == 1
    assert flag in rows[matches[0]]["flags"], f"{matches[0]}: {rows[matches[0]]['flags']}"
    assert matches[0] in result.flagged[flag]
    # only scenes with that fault carry the flag
    allowed = {"exposure_mismatch": ("ratio", "light")}.get(flag, (scene,))
    assert all(any(_rows_of(rows, s).get(pid) is not None for s in allowed) for pid in result.flagged[flag]), \
        result.flagged[flag]


def test_exposure_and_motion_figures(bracket_qa):
    rows, _, _ = bracket_qa
    ratio = json.loads(rows["brackets/ratio/low_light"]["extra"])["qa"]["exposure"]
    assert ratio["exif_vs_intended_stops"] == pytest.approx(-1.0, abs=0.01)
    light = json.loads(rows["brackets/light/low_light"]["extra"])["qa"]["exposure"]
    assert light["measured"] == pytest.approx(6.0, rel=0.03) and light["exif"] == pytest.approx(4.0)
    motion = json.loads(rows["brackets/motion/low_light"]["extra"])["qa"]["local_motion"]
    assert motion["max_px"] == pytest.approx(np.hypot(3, 5), abs=1.0) and motion["moving_tiles"] >= 2


def test_global_registration_is_sub_pixel(bracket_qa):
    rows, _, m = bracket_qa
    pid = next(p for p in rows if p.endswith("_shifted_well_lit"))
    reg = json.loads(rows[pid]["extra"])["qa"]["registration"]
    # ECC's warp maps target (fixed) coordinates to raw (moving) coordinates: the inverse of the JPEG's warp
    inv = cv2.invertAffineTransform(m)
    h, w = 256, 384
    centre = np.array([(w - 1) / 2, (h - 1) / 2])
    expected_shift = inv[:, :2] @ centre + inv[:, 2] - centre
    assert reg["dx"] == pytest.approx(expected_shift[0], abs=0.1)
    assert reg["dy"] == pytest.approx(expected_shift[1], abs=0.1)
    expected_rotation = np.degrees(np.arctan2(inv[1, 0] - inv[0, 1], inv[0, 0] + inv[1, 1]))
    assert reg["rotation_deg"] == pytest.approx(expected_rotation, abs=0.03)
    assert reg["scale"] == pytest.approx(1.0, abs=0.002)


def test_qa_rerun_is_idempotent_and_cli_runs(bracket_qa, tmp_path):
    rows, result, _ = bracket_qa
    from isp_bench.qa.cli import add_commands

    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    folder = Path(result.manifest.path).parent
    args = parser.parse_args(["qa", str(result.manifest.path), "--root", str(folder), "--out",
                              str(tmp_path / "again.parquet"), "--quiet", "--worst", "2"])
    assert args.func(args) == 0
    again = {r["pair_id"]: r for r in read_manifest(tmp_path / "again.parquet").rows()}
    assert {k: r["flags"] for k, r in again.items()} == {k: r["flags"] for k, r in rows.items()}
    assert len(list((tmp_path / "again_qa" / "images").glob("*.png"))) == 2


def test_negative_limits_are_refused_in_one_line(tmp_path, capsys):
    from isp_bench.cli import main
    from isp_bench.errors import IspBenchError
    from isp_bench.qa.thresholds import Thresholds

    with pytest.raises(IspBenchError, match=r"^--misaligned-px -1.0: a limit is 0 or more$"):
        Thresholds(misaligned_px=-1.0)
    with pytest.raises(IspBenchError, match=r"^--blur-ratio nan: a limit is 0 or more$"):
        Thresholds(blur_ratio=float("nan"))
    manifest = tmp_path / "m.parquet"
    assert main(["qa", str(manifest), "--root", str(tmp_path), "--worst", "-2"]) == 2
    assert capsys.readouterr().err == "isp-bench: error: --worst -2: give 0 (no images) or more\n"



def test_a_shift_measured_alike_in_every_quadrant_is_misaligned_one_the_quadrants_disagree_on_unverified():
    """`misaligned` needs a measurement the frame's quadrants reproduce; where they disagree (here: structure in
    one quadrant only, noise elsewhere; in the synthetic set, the smooth saturated colour wheel) it is
    `unverified`."""
    from isp_bench.qa.registration import global_alignment, quadrant_disagreement
    from isp_bench.qa.run import _raw_vs_target
    from isp_bench.qa.thresholds import Thresholds

    rng = np.random.default_rng(0)
    h, w = 192, 256
    texture = cv2.GaussianBlur(rng.random((h + 8, w + 8)).astype(np.float32), (0, 0), 1.5)
    moved = cv2.warpAffine(texture, np.float32([[1, 0, 1.5], [0, 1, -0.8]]), (w + 8, h + 8), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT)
    fixed, moving = texture[4:-4, 4:-4], moved[4:-4, 4:-4]
    one_quadrant = [np.full((h, w), 0.5, np.float32) for _ in range(2)]
    for image, source in zip(one_quadrant, (fixed, moving)):
        image[: h // 2, : w // 2] = source[: h // 2, : w // 2]
        image += rng.normal(0, 0.01, image.shape).astype(np.float32)
    for (target, render), flag, disagreement in [((fixed, moving), "misaligned", (0, 0.1)),
                                                 (one_quadrant, "unverified", (5, np.inf))]:
        alignment = global_alignment(target, render)
        assert alignment.dx == pytest.approx(1.5, abs=0.1) and alignment.dy == pytest.approx(-0.8, abs=0.2)
        assert disagreement[0] <= quadrant_disagreement(target, render, alignment) < disagreement[1]
        pair_qa, flags = {}, set()
        _raw_vs_target(np.dstack([render] * 3), np.dstack([target] * 3), Thresholds(), pair_qa, flags)
        assert flags & {"misaligned", "unverified"} == {flag}
