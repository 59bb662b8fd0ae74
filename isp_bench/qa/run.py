"""Pair QA over a manifest: registration, residual motion, exposure ratio, clipping and blur per
pair, written back as flags and an ``extra["qa"]`` JSON entry, plus a per-session report.

Flags (:data:`QA_FLAGS`; a re-run replaces them, other flags are kept):

- ``misaligned``: the raw's classic rendering and the target differ by a global warp moving some
  frame corner more than ``misaligned_px`` (or registration failed); for monitor captures, the
  capture warped onto the source image by the fiducial homography is still off by more than that,
  or the fiducials were not found;
- ``unverified``: the global warp would flag ``misaligned``, but the frame's quadrants measured alone
  disagree with it by more than ``misaligned_px`` (:func:`~isp_bench.qa.registration.quadrant_disagreement`):
  too little unambiguous structure to tell (a smooth saturated chart); inspect the pair by eye;
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
from isp_bench.data.cache import read_target
from isp_bench.images import read_image
from isp_bench.manifest import Manifest, check_dataset_root, check_manifest_path, read_manifest, write_manifest
from isp_bench.qa import checks
from isp_bench.qa.report import badness, panel, write_report
from isp_bench.qa.registration import (
    RegistrationError,
    global_alignment,
    local_motion,
    monitor_homography,
    quadrant_disagreement,
    warp_moving,
    warp_to_source,
)
from isp_bench.qa.thresholds import Thresholds

QA_VERSION = 1
QA_FLAGS = ("misaligned", "unverified", "motion", "clipped", "blurred", "exposure_mismatch")


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
    img = read_target(row, check_manifest_path(row["target_path"], pair_id=row["pair_id"], column="target_path",
                                               root=root))
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


@dataclass
class _Context:
    """What every pair check of one QA run reads besides its own row (sent to each worker)."""

    root: Path
    by_id: dict[str, dict]  # the rows a task needs: its own and their bracket partners
    registrations: dict[str, Any]  # fiducial frame pair id → MonitorRegistration or RegistrationError
    layout: DisplayLayout | None
    thresholds: Thresholds
    panels: bool  # render report panels


def qa_manifest(manifest_path: str | Path, root: str | Path, out: str | Path | None = None, *,
                report: str | Path | None = None, thresholds: Thresholds = Thresholds(), worst: int = 6,
                progress: bool = False, workers: int | None = None, scheduler: str = "local") -> QAResult:
    """Run the pair checks on every row of the manifest at ``manifest_path`` (files under ``root``) and
    write the manifest with QA flags and ``extra["qa"]`` to ``out`` (default: replace the input,
    atomically). ``report``: folder for the per-session markdown report and its images.

    ``scheduler``/``workers`` choose where the checks run (:func:`isp_bench.parallel.executor`): the
    local backend runs them in this process unless ``workers`` > 1; ``dask`` or ``tcp://HOST:PORT``
    fan them out over a Dask cluster whose workers see ``root``. First the fiducial frames are
    registered, then each bracket (a pair and its partner) or lone pair is one task; the written
    manifest is the same whichever backend ran them."""
    from tqdm import tqdm

    from isp_bench.parallel import TaskLost, check_scheduler, executor

    check_scheduler(scheduler)
    t0 = time.perf_counter()
    manifest = read_manifest(manifest_path)
    root = check_dataset_root(manifest, root)
    rows = manifest.rows()
    extras = {r["pair_id"]: json.loads(r["extra"]) if r.get("extra") else {} for r in rows}
    by_id = {r["pair_id"]: r for r in rows}
    layout = _layout(manifest, root)
    if workers is None and scheduler == "local":
        workers = 1

    qa: dict[str, dict[str, Any]] = {}
    flags: dict[str, set[str]] = {}
    # report images: per session, the `worst` pairs by their per-pair checks, as small uint8 panels
    panels: dict[str, list[tuple[float, str, np.ndarray]]] = {}
    with executor(scheduler, workers, preload=("isp_bench.qa.run",)) as ex:
        registrations = {}
        fiducial_jobs = [(root, by_id[pid], layout) for pid in _fiducial_frames(rows, extras, by_id, layout)]
        for (_, row, _), reg in ex.map_unordered(_register_fiducials, fiducial_jobs):
            registrations[row["pair_id"]] = _lost(reg, row) if isinstance(reg, TaskLost) else reg
        groups = _bracket_groups(rows, extras)
        jobs = [([by_id[pid] for pid in group], _Context(root, {pid: by_id[pid] for pid in group},
                                                         registrations, layout, thresholds, report is not None))
                for group in groups]
        with tqdm(total=len(rows), desc="qa", unit="pair", disable=not progress) as bar:
            for (group_rows, _), checked in ex.map_unordered(_check_group, jobs):
                if isinstance(checked, TaskLost):
                    raise _lost(checked, group_rows[0])
                for pid, pair_qa, pair_flags, shown in checked:
                    qa[pid], flags[pid] = pair_qa, pair_flags
                    if shown is not None:
                        session = (extras[pid].get("capture") or {}).get("session") or manifest.dataset
                        _keep_worst(panels.setdefault(session, []), (badness(pair_qa, thresholds), pid, shown), worst)
                bar.update(len(checked))

    _session_blur(qa, flags, thresholds)
    new_rows, flagged = _rows_with_qa(rows, extras, qa, flags, thresholds)
    out = Path(out) if out is not None else Path(manifest_path)
    written = write_manifest(out, new_rows, dataset=manifest.dataset, errors=manifest.errors,
                             source_meta=manifest.meta.get("source"))
    report_path = None
    if report is not None:
        images = {pid: image for heap in panels.values() for _, pid, image in heap}
        report_path = write_report(report, new_rows, images, thresholds=thresholds, worst=worst)
    return QAResult(written, new_rows, flagged, report_path, time.perf_counter() - t0)


def _lost(lost, row: dict) -> RegistrationError:
    return RegistrationError(f"pair {row['pair_id']} ({row['input_path']}): {lost}")


def _keep_worst(heap: list, entry: tuple[float, str, np.ndarray], worst: int) -> None:
    """Keep the ``worst`` highest (badness, pair id) entries; the same set whatever the arrival order."""
    heapq.heappush(heap, entry)
    if len(heap) > worst:
        heapq.heappop(heap)


def _fiducial_frames(rows: list[dict], extras: dict[str, dict], by_id: dict[str, dict],
                     layout: DisplayLayout | None) -> list[str]:
    """Pair ids whose fiducial registration some check needs: the fiducial frames, and the frames
    monitor captures name as their ``fiducials_pair``."""
    if layout is None:
        return []
    needed: dict[str, None] = {}
    for row in rows:
        capture = extras[row["pair_id"]].get("capture") or {}
        if capture.get("frame_type") == "fiducials":
            needed[row["pair_id"]] = None
        elif capture.get("frame_type") == "image" and capture.get("source") and capture.get("fiducials_pair") in by_id:
            needed[capture["fiducials_pair"]] = None
    return list(needed)


def _register_fiducials(job: tuple[Path, dict, DisplayLayout]):
    """The display → capture registration of a fiducial frame, or the RegistrationError saying why not."""
    root, row, layout = job
    _, render, _ = _Frames(root).raw(row)
    try:
        return monitor_homography(render, layout)
    except RegistrationError as exc:
        return exc


def _bracket_groups(rows: list[dict], extras: dict[str, dict]) -> list[list[str]]:
    """Pair ids in groups checked together: a bracket's frames (linked by ``partner_pair``) share one
    task, so each raw is rendered once; other pairs are alone. Manifest order within and across groups."""
    ids = {r["pair_id"] for r in rows}
    group_of: dict[str, list[str]] = {}
    groups: list[list[str]] = []
    for row in rows:
        pid = row["pair_id"]
        partner = (extras[pid].get("capture") or {}).get("partner_pair")
        group = group_of.get(pid) or (group_of.get(partner) if partner in ids else None)
        if group is None:
            group = []
            groups.append(group)
        group.append(pid)
        group_of[pid] = group
        if partner in ids:
            group_of.setdefault(partner, group)
    return groups


def _check_group(job: tuple[list[dict], _Context]) -> list[tuple[str, dict[str, Any], set[str], np.ndarray | None]]:
    """``(pair id, qa entry, flags, report panel or None)`` for each pair of one group."""
    group_rows, ctx = job
    frames = _Frames(ctx.root)
    checked = []
    for row in group_rows:
        pair_qa, pair_flags, shown = _check_pair(row, frames, ctx)
        checked.append((row["pair_id"], pair_qa, pair_flags, panel(*shown) if ctx.panels and shown else None))
    return checked


def _check_pair(row: dict, frames: _Frames, ctx: _Context) -> tuple[dict[str, Any], set[str], tuple | None]:
    """The per-pair checks: ``(qa entry, flags, (registered image, reference) for the report or None)``."""
    pid = row["pair_id"]
    capture_info = (json.loads(row["extra"]) if row.get("extra") else {}).get("capture") or {}
    frame_type = capture_info.get("frame_type")
    pair_qa: dict[str, Any] = {"version": QA_VERSION}
    pair_flags: set[str] = set()
    shown = None
    cap, render, crop = frames.raw(row)
    pair_qa["clipped_raw"] = _r(checks.clipped_fraction_raw(cap.mosaic, cap.white_level, cap.black_level), 6)
    if pair_qa["clipped_raw"] > ctx.thresholds.clipped_fraction and frame_type not in ("white",):
        pair_flags.add("clipped")
    target = _target(ctx.root, row, crop)
    if target is not None:
        pair_qa["clipped_target"] = _r(checks.clipped_fraction_image(target), 6)
    if "calibration_frame" in row["flags"] and frame_type != "fiducials":
        pair_qa["skipped"] = "calibration frame: clipping only"
        return pair_qa, pair_flags, None
    if frame_type == "fiducials" and ctx.layout is not None:
        reg = ctx.registrations[pid]
        if isinstance(reg, RegistrationError):
            pair_qa["monitor"] = {"error": str(reg)}
            pair_flags.add("misaligned")
        else:
            pair_qa["monitor"] = _monitor_dict(reg, crop)
        return pair_qa, pair_flags, None
    if target is not None:
        shown = _raw_vs_target(render, target, ctx.thresholds, pair_qa, pair_flags)
    if frame_type == "image" and ctx.layout is not None and capture_info.get("source"):
        shown = _monitor_vs_source(render, crop, capture_info, ctx, pair_qa, pair_flags) or shown
    partner = capture_info.get("partner_pair")
    if partner in ctx.by_id:
        _bracket_checks(row, cap, render, ctx.by_id[partner], frames, capture_info, ctx.thresholds,
                        pair_qa, pair_flags)
    return pair_qa, pair_flags, shown


def _raw_vs_target(render: np.ndarray, target: np.ndarray, thresholds: Thresholds, pair_qa: dict,
                   pair_flags: set[str]) -> tuple | None:
    """Raw rendering ↔ target (the camera's own JPEG; for derived low_light rows, the other frame's):
    global registration (``misaligned``, or ``unverified`` when it cannot be trusted) and residual local motion
    (``motion``)."""
    if target.shape[:2] != render.shape[:2]:
        pair_qa["registration"] = {"error": f"target {target.shape[1]}×{target.shape[0]} differs from the raw's "
                                            f"{render.shape[1]}×{render.shape[0]}"}
        pair_flags.add("misaligned")
        return None
    alignment = global_alignment(target, render)
    pair_qa["registration"] = alignment.to_dict()
    if not alignment.converged:
        pair_flags.add("misaligned")
    elif alignment.max_displacement_px > thresholds.misaligned_px:  # measured, or only an unreliable measurement?
        disagreement = quadrant_disagreement(target, render, alignment)
        pair_qa["registration"]["quadrant_disagreement_px"] = _r(disagreement)
        pair_flags.add("unverified" if disagreement > thresholds.misaligned_px else "misaligned")
    aligned = warp_moving(render, alignment.warp, target.shape[:2])
    valid = warp_moving(np.ones(render.shape[:2], np.float32), alignment.warp, target.shape[:2]) > 0.999
    motion = local_motion(target, aligned, threshold_px=thresholds.motion_px, valid=valid)
    pair_qa["local_motion"] = motion.to_dict()
    if motion.moving_tiles > 0:
        pair_flags.add("motion")
    return aligned, target


def _monitor_vs_source(render: np.ndarray, crop, capture_info: dict, ctx: _Context, pair_qa: dict,
                       pair_flags: set[str]) -> tuple | None:
    """A monitor capture warped onto its source image through the fiducial homography: residual
    registration, local motion and sharpness against the source."""
    source = read_image(ctx.root / capture_info["source"])[..., :3].astype(np.float32) / 255.0
    fid = capture_info.get("fiducials_pair")
    reg = ctx.registrations.get(fid, RegistrationError("no fiducial frame for this image"))
    if isinstance(reg, RegistrationError):
        pair_qa["monitor"] = {"error": str(reg)}
        pair_flags.add("misaligned")
        return None
    source_to_capture = reg.source_to_capture(ctx.layout, source.shape[:2])  # rendering coordinates
    warped = warp_to_source(render, source_to_capture, source.shape[:2])
    valid = warp_to_source(np.ones(render.shape[:2], np.float32), source_to_capture, source.shape[:2]) > 0.999
    residual = global_alignment(source, warped)
    motion = local_motion(source, warp_moving(warped, residual.warp, source.shape[:2]),
                          threshold_px=ctx.thresholds.motion_px, valid=valid)
    ratio = checks.sharpness(warped, mask=valid) / max(checks.sharpness(source, mask=valid), 1e-9)
    h_sensor = _to_sensor(source_to_capture, crop)
    pair_qa["monitor"] = {**_monitor_dict(reg, crop), "fiducials_pair": fid,
                          "source_to_capture": np.round(h_sensor / h_sensor[2, 2], 9).tolist(),
                          "residual": residual.to_dict(), "local_motion": motion.to_dict(),
                          "sharpness_vs_source": _r(ratio)}
    if (reg.markers_found < 3 or residual.max_displacement_px > ctx.thresholds.misaligned_px
            or not residual.converged):
        pair_flags.add("misaligned")
    if motion.moving_tiles > 0:
        pair_flags.add("motion")
    return warped, source


def _bracket_checks(row: dict, cap, render: np.ndarray, partner_row: dict, frames: _Frames, capture_info: dict,
                    thresholds: Thresholds, pair_qa: dict, pair_flags: set[str]) -> None:
    """Brackets: sharpness against the scene's other frame (``blurred``) and, for the low-light
    frame, the exposure ratio against EXIF and the intended one (``exposure_mismatch``)."""
    partner_cap, partner_render, _ = frames.raw(partner_row)
    own_sharpness, other_sharpness = checks.sharpness(render), checks.sharpness(partner_render)
    pair_qa["sharpness"] = _r(own_sharpness)
    pair_qa["sharpness_vs_other_frame"] = _r(own_sharpness / max(other_sharpness, 1e-9))
    if own_sharpness < thresholds.blur_ratio * other_sharpness:
        pair_flags.add("blurred")
    if capture_info.get("bracket") != "low_light":
        return
    intended = capture_info.get("intended_ratio")
    exif = checks.exif_ratio(partner_row, row)
    measured = checks.measured_ratio(partner_cap.normalized(), cap.normalized())
    exposure = {"intended": intended, "exif": _r(exif), "measured": _r(measured),
                "exif_vs_intended_stops": _r(checks.stops(exif, intended)),
                "measured_vs_exif_stops": _r(checks.stops(measured, exif))}
    pair_qa["exposure"] = exposure
    off = [v for v in (exposure["exif_vs_intended_stops"], exposure["measured_vs_exif_stops"]) if v is not None]
    if exif is None or any(abs(v) > thresholds.exposure_stops for v in off):
        pair_flags.add("exposure_mismatch")


def _session_blur(qa: dict[str, dict[str, Any]], flags: dict[str, set[str]], thresholds: Thresholds) -> None:
    """Monitor sessions: blur relative to the session's typical capture/source sharpness."""
    ratios = {pid: q["monitor"]["sharpness_vs_source"] for pid, q in qa.items()
              if isinstance(q.get("monitor"), dict) and q["monitor"].get("sharpness_vs_source")}
    if len(ratios) < 3:
        return
    median = float(np.median(list(ratios.values())))
    for pid, ratio in ratios.items():
        qa[pid]["monitor"]["sharpness_vs_session"] = _r(ratio / median)
        if ratio < thresholds.blur_ratio * median:
            flags[pid].add("blurred")


def _rows_with_qa(rows: list[dict], extras: dict[str, dict], qa: dict[str, dict[str, Any]],
                  flags: dict[str, set[str]], thresholds: Thresholds) -> tuple[list[dict], dict[str, list[str]]]:
    """The manifest rows with QA flags (replacing earlier QA flags) and ``extra["qa"]``, and flag → pair ids."""
    new_rows = []
    flagged: dict[str, list[str]] = {f: [] for f in QA_FLAGS}
    for row in rows:
        pid = row["pair_id"]
        extra = extras[pid]
        pair_qa = qa[pid]
        pair_qa["flags"] = sorted(flags[pid])
        pair_qa["thresholds"] = asdict(thresholds)
        extra["qa"] = pair_qa
        row = dict(row)
        row["flags"] = sorted((set(row["flags"]) - set(QA_FLAGS)) | flags[pid])
        row["extra"] = json.dumps(extra, sort_keys=True)
        new_rows.append(row)
        for f in flags[pid]:
            flagged[f].append(pid)
    return new_rows, flagged
