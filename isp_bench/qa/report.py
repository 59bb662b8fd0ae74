"""Per-session QA report: a markdown page per session with a summary, the flagged pairs and the worst
pairs as images (the raw's classic rendering aligned onto the target | the target | 4× difference)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from isp_bench.files import atomic_write_text
from isp_bench.images import write_png


def badness(q: dict[str, Any], th) -> float:
    """One number to rank pairs by: the largest measured value relative to its threshold."""
    scores = [0.0]
    reg = q.get("registration") or {}
    if "max_displacement_px" in reg:
        scores.append(reg["max_displacement_px"] / th.misaligned_px)
    mon = q.get("monitor") or {}
    if "error" in reg or "error" in mon:
        scores.append(10.0)
    if "residual" in mon:
        scores.append(mon["residual"]["max_displacement_px"] / th.misaligned_px)
    for lm in (q.get("local_motion"), mon.get("local_motion")):
        if lm and lm.get("tiles"):
            scores.append(lm["max_px"] / th.motion_px)
    scores.append((q.get("clipped_raw") or 0.0) / th.clipped_fraction)
    for key in ("sharpness_vs_other_frame",):
        if q.get(key):
            scores.append(th.blur_ratio / q[key])
    if mon.get("sharpness_vs_session"):
        scores.append(th.blur_ratio / mon["sharpness_vs_session"])
    e = q.get("exposure") or {}
    for key in ("exif_vs_intended_stops", "measured_vs_exif_stops"):
        if e.get(key) is not None:
            scores.append(abs(e[key]) / th.exposure_stops)
    return float(max(scores))


def panel(aligned: np.ndarray, target: np.ndarray, max_width: int = 960) -> np.ndarray:
    # match each channel's mean to the target's, so the difference shows geometry and detail, not colour
    valid = aligned.sum(axis=-1) > 0
    if valid.any():
        gain = target[valid].mean(axis=0) / np.maximum(aligned[valid].mean(axis=0), 1e-6)
        aligned = np.clip(aligned * gain, 0, 1)
    diff = np.clip(np.abs(aligned - target) * 4, 0, 1)
    strip = np.concatenate([aligned, np.ones((aligned.shape[0], 4, 3), np.float32), target,
                            np.ones((aligned.shape[0], 4, 3), np.float32), diff], axis=1)
    step = max(1, int(np.ceil(strip.shape[1] / max_width)))
    return np.round(np.clip(strip[::step, ::step], 0, 1) * 255).astype(np.uint8)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "pair"


def _cell(value: float | None, decimals: int = 2) -> str:
    """A table cell: the value to ``decimals`` places, empty when not measured."""
    return "" if value is None else f"{value:.{decimals}f}"


def write_report(folder: str | Path, rows: list[dict[str, Any]], images: dict[str, np.ndarray],
                 *, thresholds, worst: int = 6) -> Path:
    """Write ``<folder>/<session>.md`` per session (and ``index.md``) with images under ``images/``;
    ``images`` maps pair ids to their :func:`panel` (only the pairs worth showing)."""
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    sessions: dict[str, list[tuple[dict, dict]]] = {}
    for row in rows:
        extra = json.loads(row["extra"]) if row.get("extra") else {}
        name = (extra.get("capture") or {}).get("session") or row["dataset"]
        sessions.setdefault(name, []).append((row, extra))
    index = ["# Pair QA report", "", "| session | pairs | flagged | report |", "|---|---|---|---|"]
    for name, items in sorted(sessions.items()):
        ranked = sorted(items, key=lambda it: -badness(it[1]["qa"], thresholds))
        counts: dict[str, int] = {}
        for row, extra in items:
            for f in extra["qa"]["flags"]:
                counts[f] = counts.get(f, 0) + 1
        n_flagged = sum(1 for _, e in items if e["qa"]["flags"])
        lines = [f"# QA: session {name}", "",
                 f"{len(items)} pairs, {n_flagged} flagged"
                 + (": " + ", ".join(f"`{k}` {v}" for k, v in sorted(counts.items())) if counts else "") + ".", "",
                 "Thresholds: " + ", ".join(f"{k} {v}" for k, v in vars(thresholds).items()) + ".", "",
                 "| pair | flags | misalign px | motion px | clipped raw | sharpness vs other | exposure stops | score |",
                 "|---|---|---|---|---|---|---|---|"]
        for row, extra in ranked:
            q = extra["qa"]
            reg = q.get("registration") or {}
            mon = q.get("monitor") or {}
            mis = (mon.get("residual") or {}).get("max_displacement_px", reg.get("max_displacement_px"))
            lm = mon.get("local_motion") or q.get("local_motion") or {}
            sharp = q.get("sharpness_vs_other_frame") or mon.get("sharpness_vs_session")
            e = q.get("exposure") or {}
            stops = e.get("exif_vs_intended_stops")
            lines.append(f"| `{row['pair_id']}` | {' '.join(f'`{f}`' for f in q['flags'])} | {_cell(mis)} | "
                         f"{_cell(lm.get('max_px'))} | {_cell(q.get('clipped_raw'), 4)} | {_cell(sharp)} | "
                         f"{_cell(stops)} | "
                         f"{badness(q, thresholds):.2f} |")
        shown = [(r, e) for r, e in ranked if r["pair_id"] in images][:worst]
        if shown:
            lines += ["", f"## The {len(shown)} worst pairs", "",
                      ("Each image: the raw's classic rendering registered onto the target | the target "
                       "(monitor captures: the source image) | 4× absolute difference."), ""]
            for row, extra in shown:
                fname = f"images/{_slug(name)}__{_slug(row['pair_id'])}.png"
                write_png(folder / fname, images[row["pair_id"]])
                lines += [f"### `{row['pair_id']}` ({', '.join(extra['qa']['flags']) or 'no flags'})", "",
                          f"![{row['pair_id']}]({fname})", ""]
        page = f"{_slug(name)}.md"
        atomic_write_text(folder / page, "\n".join(lines) + "\n")
        index.append(f"| {name} | {len(items)} | {n_flagged} | [{page}]({page}) |")
    atomic_write_text(folder / "index.md", "\n".join(index) + "\n")
    return folder / "index.md"
