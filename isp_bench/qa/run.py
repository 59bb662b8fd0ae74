"""Pair QA over a manifest: registration, residual motion, exposure ratio, clipping and blur per
pair, written back as flags and an ``extra["qa"]`` JSON entry, plus a per-session report.

Flags (:data:`QA_FLAGS`; a re-run replaces them, other flags are kept):

- ``misaligned``: the raw's classic rendering and the target differ by a global warp moving some
  frame corner more than ``misaligned_px`` (or registration failed); for monitor captures, the
  capture warped onto the source image by the fiducial homography is still off by more than that,
  or the fiducials were not found;
- ``motion``: after the global warp, some textured tile still moves more than ``motion_px``
  (subject motion between the bracket frames, a shaken tripod);
- ``clipped``: more than ``clipped_fraction`` of the raw photosites are at the white level;
- ``blurred``: sharpness (variance of the Laplacian) below ``blur_ratio`` × the scene's other frame
  (brackets), or × the session's median capture/source sharpness ratio (monitor sessions);
- ``exposure_mismatch``: the EXIF exposure ratio of a bracket is more than ``exposure_stops`` off the
  intended one, or the ratio measured from the raw data is that far off the EXIF one.
"""

from __future__ import annotations

import heapq
import json
import math
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from isp_bench.capture.frames import DisplayLayout
from isp_bench.images import read_image
from isp_bench.manifest import Manifest, check_manifest_path, read_manifest, write_manifest
from isp_bench.qa import checks
from isp_bench.qa.report import badness, panel, write_report
from isp_bench.qa.registration import (
    RegistrationError,
    global_alignment,
    local_motion,
    monitor_homography,
    warp_moving,
    warp_to_source,
)
from isp_bench.qa.thresholds import Thresholds

QA_VERSION = 1
QA_FLAGS = ("misaligned", "motion", "clipped", "blurred", "exposure_mismatch")


@dataclass
class QAResult:
    manifest: Manifest
    rows: list[dict[str, Any]]
    flagged: dict[str, list[str]]  # flag → pair ids
    report: Path | None
    seconds: float


class _Frames:
    """Reads and renders raw files, keeping the ``keep`` most recently used (a pair and its session
    partners are neighbours in manifest order; a 12 MP rendering is ~150 MB, so memory stays bounded)."""

    def __init__(self, root: Path, keep: int = 4):
        self.root = root
        self.keep = keep
        self._cache: OrderedDict[str, tuple] = OrderedDict()

    def raw(self, row: dict):
        """(capture, clipped sRGB render, crop) of the row's input file, read once while it stays cached."""
        rel = row["input_path"]
        if rel in self._cache:
            self._cache.move_to_end(rel)
        else:
            from isp_bench.models.classic import render_capture
            from isp_bench.raw import read_raw

            cap = read_raw(check_manifest_path(rel, pair_id=row["pair_id"], column="input_path", root=self.root))
            srgb, crop = render_capture(cap, "bilinear")
            self._cache[rel] = (cap, np.clip(srgb, 0, 1), crop)
            while len(self._cache) > self.keep:
                self._cache.popitem(last=False)
        return self._cache[rel]


def _target(root: Path, row: dict, crop) -> np.ndarray | None:
    if not row.get("target_path"):
        return None
    img = read_image(check_manifest_path(row["target_path"], pair_id=row["pair_id"], column="target_path", root=root))
    if row.get("target_rot90"):
        img = np.rot90(img, int(row["target_rot90"]))
    img = img[..., :3]
    img = img.astype(np.float32) / (255.0 if img.dtype == np.uint8 else float(np.iinfo(img.dtype).max))
    if img.shape[:2] == (row["height"], row["width"]):
        img = crop.apply(img)
    return np.ascontiguousarray(img)


def _layout(manifest: Manifest, root: Path) -> DisplayLayout | None:
    session = (manifest.meta.get("source") or {}).get("session") or {}
    if not session and (root / "session.json").is_file():
        session = json.loads((root / "session.json").read_text())
    d = session.get("display")
    if not d:
        return None
    return DisplayLayout(int(d["height"]), int(d["width"]), float(d.get("margin", 0.04)),
                         float(d.get("marker_frac", 0.2)))


def _to_sensor(h: np.ndarray, crop) -> np.ndarray:
    """A homography into rendering coordinates (the RGGB-phase crop of the mosaic) → into raw sensor
    coordinates (the visible mosaic, as stored in the file)."""
    return np.array([[1, 0, crop.left], [0, 1, crop.top], [0, 0, 1]], dtype=np.float64) @ h


def _monitor_dict(reg, crop) -> dict:
    d = reg.to_dict()
    d["display_to_capture"] = np.round(_to_sensor(reg.display_to_capture, crop), 9).tolist()
    d["capture_coordinates"] = "raw sensor pixels (visible mosaic, pixel centres at integers)"
    return d


def _r(x, n=4):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), n)


def qa_manifest(manifest_path: str | Path, root: str | Path, out: str | Path | None = None, *,
                report: str | Path | None = None, thresholds: Thresholds = Thresholds(), worst: int = 6,
                progress: bool = False) -> QAResult:
    """Run the pair checks on every row of the manifest at ``manifest_path`` (files under ``root``) and
    write the manifest with QA flags and ``extra["qa"]`` to ``out`` (default: replace the input,
    atomically). ``report``: folder for the per-session markdown report and its images."""
    from tqdm import tqdm

    t0 = time.perf_counter()
    manifest = read_manifest(manifest_path)
    root = Path(root)
    rows = manifest.rows()
    extras = {r["pair_id"]: json.loads(r["extra"]) if r.get("extra") else {} for r in rows}
    by_id = {r["pair_id"]: r for r in rows}
    frames = _Frames(root)
    layout = _layout(manifest, root)
    th = thresholds
    qa: dict[str, dict[str, Any]] = {}
    flags: dict[str, set[str]] = {r["pair_id"]: set() for r in rows}
    # report images: per session, the `worst` pairs by their per-pair checks, as small uint8 panels
    panels: dict[str, list[tuple[float, str, np.ndarray]]] = {}
    homographies: dict[str, Any] = {}

    def fiducial_registration(pair_id: str):
        if pair_id not in homographies:
            _, img, _ = frames.raw(by_id[pair_id])
            try:
                homographies[pair_id] = monitor_homography(img, layout)
            except RegistrationError as exc:
                homographies[pair_id] = exc
        return homographies[pair_id]

    for row in tqdm(rows, desc="qa", unit="pair", disable=not progress):
        pid = row["pair_id"]
        cap_info = extras[pid].get("capture") or {}
        frame_type = cap_info.get("frame_type")
        q: dict[str, Any] = {"version": QA_VERSION}
        qa[pid] = q
        shown = None  # (moving image registered onto the reference, reference) for the report
        cap, render, crop = frames.raw(row)
        q["clipped_raw"] = _r(checks.clipped_fraction_raw(cap.mosaic, cap.white_level, cap.black_level), 6)
        if q["clipped_raw"] > th.clipped_fraction and frame_type not in ("white",):
            flags[pid].add("clipped")
        target = _target(root, row, crop)
        if target is not None:
            q["clipped_target"] = _r(checks.clipped_fraction_image(target), 6)
        if "calibration_frame" in row["flags"] and frame_type != "fiducials":
            q["skipped"] = "calibration frame: clipping only"
            continue
        if frame_type == "fiducials" and layout is not None:
            reg = fiducial_registration(pid)
            if isinstance(reg, RegistrationError):
                q["monitor"] = {"error": str(reg)}
                flags[pid].add("misaligned")
            else:
                q["monitor"] = _monitor_dict(reg, crop)
            continue

        # raw rendering ↔ target (the camera's own JPEG; for derived low_light rows, the other frame's)
        if target is not None and target.shape[:2] == render.shape[:2]:
            al = global_alignment(target, render)
            q["registration"] = al.to_dict()
            if not al.converged or al.max_displacement_px > th.misaligned_px:
                flags[pid].add("misaligned")
            aligned = warp_moving(render, al.warp, target.shape[:2])
            valid = warp_moving(np.ones(render.shape[:2], np.float32), al.warp, target.shape[:2]) > 0.999
            lm = local_motion(target, aligned, threshold_px=th.motion_px, valid=valid)
            q["local_motion"] = lm.to_dict()
            if lm.moving_tiles > 0:
                flags[pid].add("motion")
            shown = (aligned, target)
        elif target is not None:
            q["registration"] = {"error": f"target {target.shape[1]}×{target.shape[0]} differs from the raw's "
                                          f"{render.shape[1]}×{render.shape[0]}"}
            flags[pid].add("misaligned")

        # monitor captures: onto the source image through the fiducial homography
        if frame_type == "image" and layout is not None and cap_info.get("source"):
            source = read_image(root / cap_info["source"])[..., :3].astype(np.float32) / 255.0
            fid = cap_info.get("fiducials_pair")
            reg = fiducial_registration(fid) if fid in by_id else RegistrationError("no fiducial frame for this image")
            if isinstance(reg, RegistrationError):
                q["monitor"] = {"error": str(reg)}
                flags[pid].add("misaligned")
            else:
                h_sc = reg.source_to_capture(layout, source.shape[:2])  # rendering coordinates
                warped = warp_to_source(render, h_sc, source.shape[:2])
                valid = warp_to_source(np.ones(render.shape[:2], np.float32), h_sc, source.shape[:2]) > 0.999
                residual = global_alignment(source, warped)
                lm = local_motion(source, warp_moving(warped, residual.warp, source.shape[:2]),
                                  threshold_px=th.motion_px, valid=valid)
                ratio = checks.sharpness(warped, mask=valid) / max(checks.sharpness(source, mask=valid), 1e-9)
                h_sensor = _to_sensor(h_sc, crop)
                q["monitor"] = {**_monitor_dict(reg, crop), "fiducials_pair": fid,
                                "source_to_capture": np.round(h_sensor / h_sensor[2, 2], 9).tolist(),
                                "residual": residual.to_dict(), "local_motion": lm.to_dict(),
                                "sharpness_vs_source": _r(ratio)}
                if reg.markers_found < 3 or residual.max_displacement_px > th.misaligned_px or not residual.converged:
                    flags[pid].add("misaligned")
                if lm.moving_tiles > 0:
                    flags[pid].add("motion")
                shown = (warped, source)

        # brackets: exposure ratio and sharpness against the scene's other frame
        partner = cap_info.get("partner_pair")
        if partner in by_id:
            prow = by_id[partner]
            pcap, prender, _ = frames.raw(prow)
            own_s, other_s = checks.sharpness(render), checks.sharpness(prender)
            q["sharpness"] = _r(own_s)
            q["sharpness_vs_other_frame"] = _r(own_s / max(other_s, 1e-9))
            if own_s < th.blur_ratio * other_s:
                flags[pid].add("blurred")
            if cap_info.get("bracket") == "low_light":
                intended = cap_info.get("intended_ratio")
                exif = checks.exif_ratio(prow, row)
                measured = checks.measured_ratio(pcap.normalized(), cap.normalized())
                e = {"intended": intended, "exif": _r(exif), "measured": _r(measured),
                     "exif_vs_intended_stops": _r(checks.stops(exif, intended)),
                     "measured_vs_exif_stops": _r(checks.stops(measured, exif))}
                q["exposure"] = e
                bad = [v for v in (e["exif_vs_intended_stops"], e["measured_vs_exif_stops"]) if v is not None]
                if exif is None or any(abs(v) > th.exposure_stops for v in bad):
                    flags[pid].add("exposure_mismatch")
        if report is not None and shown is not None:
            session = (extras[pid].get("capture") or {}).get("session") or manifest.dataset
            heap = panels.setdefault(session, [])
            heapq.heappush(heap, (badness(q, th), pid, panel(*shown)))
            if len(heap) > worst:
                heapq.heappop(heap)

    # monitor sessions: blur relative to the session's typical capture/source sharpness
    ratios = {pid: q["monitor"]["sharpness_vs_source"] for pid, q in qa.items()
              if isinstance(q.get("monitor"), dict) and q["monitor"].get("sharpness_vs_source")}
    if len(ratios) >= 3:
        med = float(np.median(list(ratios.values())))
        for pid, r in ratios.items():
            qa[pid]["monitor"]["sharpness_vs_session"] = _r(r / med)
            if r < th.blur_ratio * med:
                flags[pid].add("blurred")

    new_rows = []
    flagged: dict[str, list[str]] = {f: [] for f in QA_FLAGS}
    for row in rows:
        pid = row["pair_id"]
        extra = extras[pid]
        q = qa[pid]
        q["flags"] = sorted(flags[pid])
        q["thresholds"] = asdict(th)
        extra["qa"] = q
        row = dict(row)
        row["flags"] = sorted((set(row["flags"]) - set(QA_FLAGS)) | flags[pid])
        row["extra"] = json.dumps(extra, sort_keys=True)
        new_rows.append(row)
        for f in flags[pid]:
            flagged[f].append(pid)
    out = Path(out) if out is not None else Path(manifest_path)
    written = write_manifest(out, new_rows, dataset=manifest.dataset, errors=manifest.errors,
                             source_meta=manifest.meta.get("source"))
    report_path = None
    if report is not None:
        images = {pid: image for heap in panels.values() for _, pid, image in heap}
        report_path = write_report(report, new_rows, images, thresholds=th, worst=worst)
    return QAResult(written, new_rows, flagged, report_path, time.perf_counter() - t0)
