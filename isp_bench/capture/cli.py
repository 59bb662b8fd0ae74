"""``isp-bench capture ...``: the capture rigs (monitor sessions, bracket plans, session ingest).

``isp_bench.cli`` (COMMAND_MODULES) calls :func:`add_commands` with its subparsers object.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from isp_bench.parallel import process_count


def add_commands(subparsers) -> None:
    """Add the ``capture`` subcommand and its actions to an argparse ``subparsers`` object."""
    p = subparsers.add_parser("capture", help="capture rigs: monitor sessions, bracket plans, session ingest",
                              description="Capture rigs that produce raw + camera-JPEG pairs; the protocols are in "
                                          "capture/README.md.")
    sub = p.add_subparsers(dest="capture_command", required=True)

    m = sub.add_parser("monitor", help="run a monitor slideshow session (full screen, or headless with --simulate)",
                       description="Show each source image between calibration frames (black, white, ColorChecker, "
                                   "fiducials), trigger the camera per frame and write the session folder "
                                   "(session.json, log.csv, sources/, captures/).")
    m.add_argument("sources", type=Path, nargs="+", help="source images, or folders of them")
    m.add_argument("--out", type=Path, required=True, help="session folder to write")
    m.add_argument("--trigger", choices=("gphoto2", "adb", "manual"), default="manual",
                   help="how the camera is fired; manual: press the shutter when told (default: %(default)s)")
    m.add_argument("--simulate", action="store_true",
                   help="headless: render offscreen and photograph each frame with the simulated camera "
                        "(default: show the frames and fire the real camera)")
    m.add_argument("--display", default="1920x1080", help="display size WxH in pixels (default: %(default)s)")
    m.add_argument("--settle", type=float, default=0.7, help="seconds before the trigger (default: %(default)s)")
    m.add_argument("--hold", type=float, default=1.5, help="seconds after the trigger (default: %(default)s)")
    m.add_argument("--calibration-every", type=int, default=25,
                   help="calibration frames every N images (default: %(default)s)")
    m.add_argument("--adb-serial", default=None,
                   help="adb device serial when several are attached (default: the only one)")
    m.add_argument("--headless", action="store_true",
                   help="no window even for a real trigger, render offscreen (default: a full-screen window)")
    m.set_defaults(func=run_monitor)

    b = sub.add_parser("plan", help="exposure-bracket plan (auto and ×1/4) from a first auto shot",
                       description="Read a first auto shot (raw or JPEG with EXIF) or take --exposure/--iso/--fnumber, "
                                   "and print the well_lit / low_light exposures snapped to the camera's exposure "
                                   "times, with the operator checklist.")
    b.add_argument("first_shot", type=Path, nargs="?",
                   help="first auto shot, raw or JPEG (default: none; then give --exposure)")
    b.add_argument("--exposure", type=float, default=None,
                   help="auto exposure time in seconds, instead of or overriding the file's (default: the file's EXIF)")
    b.add_argument("--iso", type=float, default=None, help="ISO of the auto shot (default: the file's EXIF)")
    b.add_argument("--fnumber", type=float, default=None, help="f-number of the auto shot (default: the file's EXIF)")
    b.add_argument("--ratio", type=float, default=4.0,
                   help="well_lit / low_light exposure ratio (default: %(default)s)")
    b.add_argument("--times", default="thirds",
                   help="exposure times the camera offers: thirds | halves | continuous | comma-separated seconds "
                        "(default: %(default)s)")
    b.add_argument("--session", type=Path, default=None,
                   help="also start a bracket session folder here (session.json with the plan, captures/) "
                        "(default: none, only print the plan)")
    b.add_argument("--json", action="store_true", help="print the plan as JSON (default: markdown)")
    b.set_defaults(func=run_plan)

    i = sub.add_parser("session-ingest", help="turn a session folder into a `pairs` manifest with the session facts",
                       description="Ingest a session folder with the `pairs` source and join every raw to the "
                                   "session log (capture stem, or capture time for manual/adb sessions).")
    i.add_argument("session", type=Path, help="session folder (session.json, log.csv, captures/)")
    i.add_argument("--out", type=Path, default=None, help="manifest path (default: SESSION/manifest.parquet)")
    i.add_argument("--clock-offset", type=float, default=None,
                   help="camera clock minus computer clock in seconds (default: estimated from the files)")
    i.add_argument("--workers", type=process_count, default=1,
                   help="processes reading the raws; 1 = in-process (default: %(default)s)")
    i.set_defaults(func=run_session_ingest)


def _expand(paths: list[Path]) -> list[Path]:
    from isp_bench.images import IMAGE_SUFFIXES

    out = []
    for p in paths:
        if p.is_dir():
            out += sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES)
        else:
            out.append(p)
    return out


def run_monitor(args: argparse.Namespace) -> int:
    from isp_bench.capture.frames import DisplayLayout
    from isp_bench.capture.session import (
        AdbTrigger,
        GPhoto2Trigger,
        ManualTrigger,
        OffscreenDisplay,
        Pacing,
        WindowDisplay,
        run_session,
    )
    from isp_bench.capture.simulate import simulate_monitor_session

    w, h = (int(v) for v in args.display.lower().split("x"))
    layout = DisplayLayout(h, w)
    sources = _expand(args.sources)
    if args.simulate:
        import numpy as np

        from isp_bench.capture.simcam import SimulatedCamera
        from isp_bench.capture.simulate import DEFAULT_HOMOGRAPHY

        # the default camera sees a 384-wide display; scale the homography to the chosen display
        s = np.diag([384 / w, 256 / h, 1.0]) if (w, h) != (384, 256) else np.eye(3)
        camera = SimulatedCamera(256, 384, DEFAULT_HOMOGRAPHY @ s)
        result = simulate_monitor_session(args.out, sources, layout=layout, camera=camera,
                                          calibration_every=args.calibration_every, progress=True)
    else:
        factories = {"gphoto2": lambda d: GPhoto2Trigger(d), "adb": lambda d: AdbTrigger(args.adb_serial),
                     "manual": lambda d: ManualTrigger()}
        display = OffscreenDisplay() if args.headless else WindowDisplay()
        result = run_session(sources, args.out, layout=layout, trigger_factory=factories[args.trigger],
                             display=display, pacing=Pacing(args.settle, args.hold),
                             calibration_every=args.calibration_every)
    print(f"showed {len(result.log)} frames ({result.facts['images']} images) in {result.seconds:.1f} s; "
          f"session folder {result.folder}")
    print(f"next: isp-bench capture session-ingest {result.folder}")
    return 0


def run_plan(args: argparse.Namespace) -> int:
    from isp_bench.capture.brackets import first_shot_metadata, plan_brackets
    from isp_bench.capture.session import CaptureError
    from isp_bench.files import atomic_write_text

    if args.exposure is not None and not args.exposure > 0:
        raise CaptureError(f"--exposure {args.exposure}: an exposure time is a positive number of seconds")
    if args.first_shot is not None:
        meta = first_shot_metadata(args.first_shot)
    elif args.exposure is not None:
        meta = {"exposure_s": args.exposure}
    else:
        raise CaptureError("give a first auto shot (raw or JPEG) or --exposure SECONDS")
    for key, value in (("exposure_s", args.exposure), ("iso", args.iso), ("fnumber", args.fnumber)):
        if value is not None:
            meta[key] = value
    try:
        times = args.times if args.times in ("thirds", "halves", "continuous") else \
            tuple(float(t) for t in args.times.split(","))
    except ValueError:
        raise CaptureError(f"--times {args.times!r}: give thirds, halves, continuous or comma-separated seconds "
                           "such as 0.0333,0.0167,0.0083") from None
    plan = plan_brackets(meta, ratio=args.ratio, times=times)
    print(json.dumps(plan.to_dict(), indent=1) if args.json else plan.to_markdown(), end="")
    if args.session is not None:
        (args.session / "captures").mkdir(parents=True, exist_ok=True)
        facts = {"kind": "brackets", "ratio": args.ratio, "plan": plan.to_dict(), "camera": {k: meta.get(k) for k in
                 ("make", "model", "iso", "fnumber")}}
        atomic_write_text(args.session / "session.json", json.dumps(facts, indent=1, sort_keys=True, default=str) + "\n")
        atomic_write_text(args.session / "PLAN.md", plan.to_markdown())
        print(f"started bracket session {args.session} (copy raw+JPEG files into captures/, fill log.csv; "
              "see capture/PROTOCOL_brackets.md)")
    return 0


def run_session_ingest(args: argparse.Namespace) -> int:
    from collections import Counter

    from isp_bench.capture.session_ingest import ingest_session

    manifest = ingest_session(args.session, args.out, clock_offset_s=args.clock_offset, workers=args.workers)
    rows = manifest.rows()
    calib = sum("calibration_frame" in r["flags"] for r in rows)
    unlogged = sum("unlogged" in r["flags"] for r in rows)
    splits = Counter(r["split"] for r in rows)
    print(f"wrote {manifest.path}: {len(rows)} rows ({calib} calibration frames, {unlogged} unlogged raws); "
          "per split: " + ", ".join(f"{s} {n}" for s, n in sorted(splits.items())))
    print(f"next: isp-bench qa {manifest.path} --root {args.session}")
    return 0
