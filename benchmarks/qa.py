"""Pair-QA benchmark on the simulated camera: fiducial registration error against the known
homography (markers only, and after ECC refinement), and QA time per pair.

    python benchmarks/qa.py [--captures 10] [--out benchmarks/results/qa.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from isp_bench.capture.frames import DisplayLayout, render_frame
from isp_bench.capture.session_ingest import ingest_session
from isp_bench.capture.simcam import SimulatedCamera
from isp_bench.capture.simulate import (
    DEFAULT_HOMOGRAPHY,
    BracketScene,
    simulate_bracket_session,
)
from isp_bench.models.classic import render_capture
from isp_bench.qa import qa_manifest
from isp_bench.qa.registration import homography_error_px, monitor_homography
from isp_bench.raw import read_raw
from isp_bench.files import atomic_write_text

KEYSTONED = np.array([[0.74, -0.06, 52.0], [0.05, 0.76, 18.0], [-4e-5, 6e-5, 1.0]])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--captures", type=int, default=10)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    layout = DisplayLayout(256, 384)
    top, left, h, w = layout.image_rect
    yy, xx = np.mgrid[top : top + h : 8, left : left + w : 8]
    pts = np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float64)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.captures):
            true = (DEFAULT_HOMOGRAPHY, KEYSTONED)[i % 2]
            cam = SimulatedCamera(256, 384, true, vignetting=0.3 + 0.05 * (i % 4), seed=100 + i)
            cam.photograph_frame(render_frame(layout, "fiducials"), tmp, "f", when=dt.datetime(2026, 1, 1))
            render, _ = render_capture(read_raw(Path(tmp) / "f.dng"), "bilinear")
            t = time.perf_counter()
            markers = monitor_homography(render, layout, refine=False)
            refined = monitor_homography(render, layout)
            rows.append({"markers_only_px": homography_error_px(markers.display_to_capture, true, pts),
                         "refined_px": homography_error_px(refined.display_to_capture, true, pts),
                         "seconds": time.perf_counter() - t})
        folder = simulate_bracket_session(Path(tmp) / "b", [BracketScene(f"s{i}", "astronaut", i) for i in range(4)])
        ingest_session(folder)
        t = time.perf_counter()
        result = qa_manifest(folder / "manifest.parquet", folder)
        per_pair = (time.perf_counter() - t) / len(result.rows)
    m = np.array([r["markers_only_px"] for r in rows])
    r = np.array([r["refined_px"] for r in rows])
    summary = {"captures": len(rows), "frame": "256x384",
               "markers_only_mean_px": float(m[:, 0].mean()), "markers_only_max_px": float(m[:, 1].max()),
               "refined_mean_px": float(r[:, 0].mean()), "refined_max_px": float(r[:, 1].max()),
               "homography_seconds": float(np.mean([x["seconds"] for x in rows])),
               "qa_seconds_per_pair_256x384": per_pair, "opencv_threads": cv2.getNumThreads()}
    print(json.dumps(summary, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
