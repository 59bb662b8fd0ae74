#!/usr/bin/env python
"""Exposure-bracket plan for the low-light / well-lit protocol from a first auto shot.
Same as `isp-bench capture plan`.

    python capture/bracket_plan.py FIRST_SHOT.dng [--times thirds|halves|continuous] [--session SESSION]

See capture/PROTOCOL_brackets.md for the full procedure.
"""

import argparse
import sys

from isp_bench.capture.cli import add_commands
from isp_bench.errors import IspBenchError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="bracket_plan.py")
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["capture", "plan", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except IspBenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
