#!/usr/bin/env python
"""Exposure-bracket plan for the low-light / well-lit protocol from a first auto shot.
Same as `isp-bench capture plan`.

    python capture/bracket_plan.py FIRST_SHOT.dng [--times thirds|halves|continuous] [--session SESSION]

See capture/PROTOCOL_brackets.md for the full procedure.
"""

import sys

from isp_bench.cli import main

if __name__ == "__main__":
    sys.exit(main(["capture", "plan", *sys.argv[1:]]))
