#!/usr/bin/env python
"""Session ingest: a session folder becomes a `pairs` manifest with the session facts.
Same as `isp-bench capture session-ingest`; then run `isp-bench qa MANIFEST --root SESSION`.

    python capture/session_ingest.py SESSION [--out MANIFEST] [--clock-offset SECONDS]

See capture/README.md for the full procedure.
"""

import sys

from isp_bench.cli import main

if __name__ == "__main__":
    sys.exit(main(["capture", "session-ingest", *sys.argv[1:]]))
