#!/usr/bin/env python
"""Session ingest: a session folder becomes a `pairs` manifest with the session facts.
Same as `isp-bench capture session-ingest`; then run `isp-bench qa MANIFEST --root SESSION`.

    python capture/session_ingest.py SESSION [--out MANIFEST] [--clock-offset SECONDS]

See capture/README.md for the full procedure.
"""

import argparse
import sys

from isp_bench.capture.cli import add_commands
from isp_bench.errors import IspBenchError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="session_ingest.py")
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["capture", "session-ingest", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except IspBenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
