"""``isp-bench models [--json] [PATTERN]``: the model cards, measured beside reported.

``isp_bench.cli`` (COMMAND_MODULES) calls :func:`add_commands` with its subparsers object.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_commands(subparsers) -> None:
    """Add the ``models`` subcommand to an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "models",
        help="list registered models with measured and reported parameters and MACs",
        description="List registered models: parameters and MACs at 4032×3024 measured by a forward-hook "
                    "counter on the meta device, beside the figures their papers report.",
    )
    p.add_argument("pattern", nargs="?", default="*", help="shell-style wildcard on model names (default: %(default)s, all)")
    p.add_argument("--json", action="store_true", help="print a JSON list of model cards (default: a table)")
    p.set_defaults(func=run_models)


def _fmt(value, scale: float, digits: int) -> str:
    return "-" if value is None else f"{value / scale:.{digits}f}"


def run_models(args: argparse.Namespace) -> int:
    import warnings

    from isp_bench.models import model_cards

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cards = model_cards(args.pattern, measure=True)
    if not cards:
        print(f"no model matches {args.pattern!r}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([c.to_dict() for c in cards], indent=2, default=str))
        return 0
    header = ("name", "input", "metadata", "params M", "reported M", "GMACs@12MP", "reported GMACs", "pretrained")
    rows = [header]
    for c in cards:
        rows.append((
            c.name + (" (reported only)" if c.reported_only else ""),
            c.input_kind or "-",
            ",".join(c.metadata) or "-",
            _fmt(c.params, 1e6, 4),
            _fmt(c.reported.params, 1e6, 4),
            _fmt(c.macs_4032x3024, 1e9, 1),
            _fmt(c.reported.macs, 1e9, 1),
            "yes" if c.pretrained else "-",
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for i, r in enumerate(rows):
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print("\nMACs: multiply-accumulates of conv/linear/attention for one 4032×3024 frame (GFLOPs ≈ 2 × GMACs).")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m isp_bench.models.cli``) until the top-level CLI wires it in."""
    parser = argparse.ArgumentParser(prog="isp-bench")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
