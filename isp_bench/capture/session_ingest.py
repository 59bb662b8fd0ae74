"""Session ingest: a capture session folder becomes a manifest of the generic ``pairs`` source,
with the session's facts in each row.

The folder is read by the ``pairs`` source exactly as any user's raw + JPEG folder (so the files,
sizes, hashes and raw metadata come from the one ingest engine); then each row is joined to the
session log and gets:

- ``scene``: ``<session>/<image id or bracket scene>`` and a split hashed from it (the ``pairs``
  salt), so the frames of one scene — the two frames of a bracket — land in the same split;
  calibration frames get the split :data:`CALIBRATION_SPLIT` (``calibration``) instead: they stay in
  the manifest (capture metadata, QA) but are in none of train/val/test, which every consumer
  selects by name. The hash depends on the scene alone, so a real pair's split does not depend on
  which calibration frames the session holds;
- ``subset``: the session kind (``monitor`` or ``brackets``);
- ``extra["capture"]``: session name and kind, the log row (frame type, image id, shown_at, the
  source image shown), the pair id of the frame registering it (monitor: ``fiducials``) or its
  bracket partner, the intended exposure ratio;
- flags: ``calibration_frame`` (black / white / ColorChecker / fiducial frames: not training pairs),
  ``unlogged`` (a raw file no log row claims).

Bracket sessions also get one derived row per scene, role ``low_light``: the low_light raw with the
well_lit frame's JPEG as target and ``exposure_ratio`` from the two files' EXIF (the S7-ISP pairing).
Nothing in the manifest schema changes; the manifest is written atomically.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from isp_bench.capture.session import (
    CaptureError,
    LogEntry,
    match_captures_by_time,
    read_log,
    write_log,
)
from isp_bench.datasets._common import hash_split
from isp_bench.datasets.pairs import SPLIT_FRACTIONS, SPLIT_SALT
from isp_bench.manifest import Manifest, read_manifest, write_manifest

CALIBRATION_FLAG = "calibration_frame"
# the split of calibration frames: kept in the manifest, never in train / val / test
CALIBRATION_SPLIT = "calibration"
UNLOGGED_FLAG = "unlogged"


def read_session_facts(folder: Path) -> dict[str, Any]:
    path = folder / "session.json"
    if not path.is_file():
        raise CaptureError(f"{folder}: no session.json; a session folder is written by `isp-bench capture monitor` "
                           "or `isp-bench capture plan --session` (see capture/README.md)")
    return json.loads(path.read_text())


def _stem(path: str) -> str:
    return Path(path).stem


def _loads(text: str | None) -> dict[str, Any]:
    return json.loads(text) if text else {}


def derive_bracket_log(rows: list[dict[str, Any]]) -> list[LogEntry]:
    """A bracket session's log from the raws alone: files in capture order (EXIF time, then name),
    consecutive pairs form a scene, the longer exposure of a pair is ``well_lit``. Used when the
    operator kept no log.csv (it is written for them to check)."""
    ordered = sorted(rows, key=lambda r: (r.get("datetime") or "", r["input_path"]))
    if len(ordered) % 2:
        raise CaptureError(f"{len(ordered)} raw files cannot be split into (well_lit, low_light) pairs; write "
                           "log.csv by hand (columns: index, frame_type, image_id, source, shown_at, duration_s, "
                           "capture)")
    log = []
    for i in range(0, len(ordered), 2):
        a, b = ordered[i], ordered[i + 1]
        well, low = (a, b) if (a.get("exposure_s") or 0) >= (b.get("exposure_s") or 0) else (b, a)
        scene = f"scene_{i // 2 + 1:04d}"
        for label, r in (("well_lit", well), ("low_light", low)):
            log.append(LogEntry(len(log), label, scene, "", r.get("datetime") or "", 0.0, _stem(r["input_path"])))
    return log


def ingest_session(folder: str | Path, out: str | Path | None = None, *, clock_offset_s: float | None = None,
                   workers: int | None = 1, progress: bool = False) -> Manifest:
    """Ingest the session at ``folder`` (see module doc) into ``out`` (default
    ``<folder>/manifest.parquet``) and return the manifest."""
    from isp_bench.ingest import ingest

    folder = Path(folder)
    facts = read_session_facts(folder)
    kind = facts.get("kind")
    if kind not in ("monitor", "brackets"):
        raise CaptureError(f"{folder}/session.json: kind {kind!r} is not 'monitor' or 'brackets'")
    name = facts.get("name") or folder.resolve().name
    out = Path(out) if out is not None else folder / "manifest.parquet"
    result = ingest("pairs", folder, out, workers=workers, progress=progress)
    rows = result.manifest.rows()
    if kind == "brackets" and not (folder / "log.csv").is_file():
        log = derive_bracket_log(rows)
        write_log(folder / "log.csv", log)
    else:
        log = read_log(folder / "log.csv")
    by_stem = {_stem(r["input_path"]): r for r in rows}

    # which log row each raw belongs to: the stem the trigger wrote, else the capture time
    claimed: dict[int, str] = {e.index: e.capture for e in log if e.capture and e.capture in by_stem}
    unmatched = [s for s in by_stem if s not in set(claimed.values())]
    offset = None
    if unmatched and any(not e.capture for e in log):
        times = []
        for s in unmatched:
            t = by_stem[s].get("datetime")
            if t:
                times.append((s, dt.datetime.fromisoformat(t)))
        open_entries = [e for e in log if e.index not in claimed]
        matched, offset = match_captures_by_time(times, open_entries, clock_offset_s=clock_offset_s)
        claimed.update(matched)
    entry_of: dict[str, LogEntry] = {}
    for e in log:
        if e.index in claimed:
            entry_of[claimed[e.index]] = e

    session_extra = {"session": name, "session_kind": kind}
    if offset is not None:
        session_extra["clock_offset_s"] = offset
    intended = float(facts.get("ratio", 4.0))
    new_rows = []
    for stem, row in sorted(by_stem.items()):
        e = entry_of.get(stem)
        extra = _loads(row.get("extra"))
        cap = dict(session_extra)
        row["subset"] = kind
        if e is None:
            row["flags"] = sorted(set(row["flags"]) | {UNLOGGED_FLAG})
            scene = f"{name}/unlogged/{stem}"
        else:
            cap.update({"log_index": e.index, "frame_type": e.frame_type, "image_id": e.image_id or None,
                        "shown_at": e.shown_at, "duration_s": e.duration_s})
            if kind == "monitor":
                cap["source"] = e.source or None
                if e.frame_type != "image":
                    row["flags"] = sorted(set(row["flags"]) | {CALIBRATION_FLAG})
                scene = f"{name}/{e.image_id}" if e.image_id else f"{name}/calibration/{e.index:05d}_{e.frame_type}"
            else:
                cap["bracket"] = e.frame_type
                cap["intended_ratio"] = intended
                scene = f"{name}/{e.image_id}"
        row["scene"] = scene
        row["split"] = (CALIBRATION_SPLIT if CALIBRATION_FLAG in row["flags"]
                        else hash_split(scene, SPLIT_SALT, SPLIT_FRACTIONS))
        extra["capture"] = cap
        row["extra"] = extra
        new_rows.append(row)

    # links between the frames of one scene
    by_scene: dict[str, list[dict[str, Any]]] = {}
    for row in new_rows:
        by_scene.setdefault(row["scene"], []).append(row)
    derived = []
    for scene, group in by_scene.items():
        frames = {r["extra"]["capture"].get("frame_type"): r for r in group}
        if kind == "monitor" and "image" in frames and "fiducials" in frames:
            frames["image"]["extra"]["capture"]["fiducials_pair"] = frames["fiducials"]["pair_id"]
        if kind == "brackets" and "well_lit" in frames and "low_light" in frames:
            well, low = frames["well_lit"], frames["low_light"]
            well["extra"]["capture"]["partner_pair"] = low["pair_id"]
            low["extra"]["capture"]["partner_pair"] = well["pair_id"]
            ratio = None
            if well.get("exposure_s") and low.get("exposure_s"):
                ratio = well["exposure_s"] / low["exposure_s"]
                if well.get("iso") and low.get("iso"):
                    ratio *= well["iso"] / low["iso"]
            if well.get("target_path"):
                d = dict(low)
                d["pair_id"] = f"{scene}/low_light"
                d["role"] = "low_light"
                d["exposure_ratio"] = ratio
                for k in ("target_path", "target_bytes", "target_sha256", "target_height", "target_width",
                          "target_rot90", "target_device"):
                    d[k] = well.get(k)
                d["flags"] = [f for f in low["flags"] if f != "no_target"]
                d["extra"] = {**low["extra"], "capture": {**low["extra"]["capture"], "target_from": well["pair_id"]}}
                derived.append(d)
    for row in new_rows + derived:
        row["extra"] = json.dumps(row["extra"], sort_keys=True)
    meta = dict(result.manifest.meta.get("source") or {})
    meta["session"] = {k: v for k, v in facts.items() if k not in ("plan",)} | {"name": name}
    write_manifest(out, new_rows + derived, dataset="pairs", errors=result.manifest.errors, source_meta=meta)
    return read_manifest(out)
