#!/usr/bin/env python
"""Monitor capture session rig: a full-screen slideshow of source images between calibration frames,
triggering the camera per frame and logging what was shown. Same as `isp-bench capture monitor`.

    python capture/monitor_session.py SOURCES... --out SESSION [--trigger gphoto2|adb|manual] [--simulate]

See capture/PROTOCOL_monitor.md for the full procedure.
"""

import argparse
import sys

from isp_bench.capture.cli import add_commands
from isp_bench.errors import IspBenchError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="monitor_session.py")
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["capture", "monitor", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except IspBenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
