#!/usr/bin/env python
"""Monitor capture session rig: a full-screen slideshow of source images between calibration frames,
triggering the camera per frame and logging what was shown. Same as `isp-bench capture monitor`.

    python capture/monitor_session.py SOURCES... --out SESSION [--trigger gphoto2|adb|manual] [--simulate]

See capture/PROTOCOL_monitor.md for the full procedure.
"""

import sys

from isp_bench.cli import main

if __name__ == "__main__":
    sys.exit(main(["capture", "monitor", *sys.argv[1:]]))
