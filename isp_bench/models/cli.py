"""``isp-bench models [--json] [PATTERN]``: the model cards, measured beside reported.

``isp_bench.cli`` (COMMAND_MODULES) calls :func:`add_commands` with its subparsers object. Standard
library only at the top: the cards come from the on-disk cache (:mod:`isp_bench.models._cache`) when
it holds them, so a second ``isp-bench models`` does not import PyTorch.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys

CONVENTION = (
    "params M / GMACs@12MP: measured here (parameters; multiply-accumulates of conv/linear/attention for one "
    "4032×3024 frame, counted by forward hooks on the meta device). reported: the papers' figures "
    "(isp_bench/data/papers/reported-results.csv); reported GMACs = the printed GFLOPs divided by the "
    "paper's FLOPs per MAC (CameraNet Table IV: 2). Element-wise work (activations, bias, pooling) is not counted."
)


def add_commands(subparsers) -> None:
    """Add the ``models`` subcommand to an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "models",
        help="list registered models with measured and reported parameters and MACs",
        description="List registered models: parameters and MACs at 4032×3024 measured by a forward-hook "
                    "counter on the meta device, beside the figures their papers report. Measured figures "
                    "are cached in $XDG_CACHE_HOME/isp-bench (default ~/.cache/isp-bench).",
    )
    p.add_argument("pattern", nargs="?", default="*", help="shell-style wildcard on model names (default: %(default)s, all)")
    p.add_argument("--json", action="store_true", help="print a JSON list of model cards (default: a table)")
    p.set_defaults(func=run_models)


def card_dicts() -> list[dict]:
    """Every registered model's card (``ModelCard.to_dict()``, measured), sorted by name: from the
    cache when it is complete for this code version, else measured (importing PyTorch) and cached."""
    from isp_bench.models import _cache

    cached = _cache.load()
    if not cached["complete"]:
        import warnings

        from isp_bench.models import model_cards

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cards = {c.name: c.to_dict() for c in model_cards(measure=True)}
        _cache.store(cards, complete=True)
        return [cards[n] for n in sorted(cards)]
    return [cached["cards"][n] for n in sorted(cached["cards"])]


def _fmt(value, scale: float, digits: int) -> str:
    return "-" if value is None else f"{value / scale:.{digits}f}"


def run_models(args: argparse.Namespace) -> int:
    cards = [c for c in card_dicts() if fnmatch.fnmatchcase(c["name"], args.pattern)]
    if not cards:
        print(f"no model matches {args.pattern!r}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(cards, indent=2, sort_keys=True, default=str))
        return 0
    header = ("name", "input", "metadata", "params M", "reported M", "GMACs@12MP", "reported GMACs", "reported in",
              "pretrained")
    rows = [header]
    for c in cards:
        rep = c["reported"]
        rows.append((
            c["name"] + (" (reported only)" if c["reported_only"] else ""),
            c["input_kind"] or "-",
            ",".join(c["metadata"]) or "-",
            _fmt(c["params"], 1e6, 4),
            _fmt(rep["params"], 1e6, 4),
            _fmt(c["macs_4032x3024"], 1e9, 1),
            _fmt(rep["macs"], 1e9, 1),
            rep["source"] or "-",
            "yes" if c["pretrained"] else "-",
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for i, r in enumerate(rows):
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print("\n" + CONVENTION)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m isp_bench.models.cli``)."""
    parser = argparse.ArgumentParser(prog="isp-bench")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
