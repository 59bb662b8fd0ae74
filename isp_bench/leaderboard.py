"""Leaderboards from ``runs/*/result.json`` and the papers' CSV (DESIGN §3).

``leaderboards/<dataset>.md``: per split, one table of the runs scored here (``measured``: trained and
evaluated by isp-bench; ``submitted``: an outside model's predictions scored by ``isp-bench submit``),
one row per (model, recipe, budget, seed, precision, dataset, split), the newest result by its provenance's
finished time. A metric column is keyed by the metric's full spec (name, version, settings, reference):
results whose specs differ go to separate columns and are never merged. A split of several subsets (the
synthetic set's monitor and real-world pairs) also gets each run's means per subset
(:func:`subset_table`). A model trained with several seeds (same recipe, budget and precision) has each
row labelled with its seed and a row of its mean ± standard deviation over them (:func:`seed_table`). Below,
the papers' rows for the dataset (:mod:`isp_bench.models.papers`) in a
table of their own: method as printed, paper, table, protocol and one column per reported metric as
:data:`~isp_bench.models.papers.METRIC_COLUMNS` maps it (a paper's metric whose definition differs from
ours has a column of its own). A dataset with reported rows and no runs still gets its page.

``leaderboards/README.md``: the reproduction scoreboard, one table per seed paper: each reported row of
a model the suite implements beside the best measured run on the same dataset (its test split), with
the difference per comparable metric, or the commands that would measure it.

Run ids are relative markdown links to ``<runs>/<run_id>/result.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from isp_bench.errors import IspBenchError, IspBenchWarning
from isp_bench.files import atomic_path, atomic_write_text
from isp_bench.models.papers import ReportedResult, reported_datasets, reported_for, reported_results

PLOT_METRIC = "psnr"
SUBSET_METRICS = ("psnr", "delta_e76")
"""The metrics broken down by subset: the two a learned model is held to against the classic pipeline."""
SEED_PAPERS = ("DeepISP", "CameraNet", "CRISPnet")
"""The papers whose tables the scoreboard (``leaderboards/README.md``) follows."""


class LeaderboardError(IspBenchError):
    """No results, or results that cannot be put in one table."""


def spec_key(spec: dict[str, Any]) -> str:
    """Short id of a metric spec (name, version, settings, reference)."""
    fields = {k: spec.get(k) for k in ("name", "version", "settings", "reference")}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:6]


def result_kind(result: dict[str, Any]) -> str:
    """``measured`` (trained and scored here) or ``submitted`` (outside predictions scored here)."""
    return result.get("kind", "measured")


def result_key(result: dict[str, Any]) -> tuple:
    """What one leaderboard row stands for: (model, recipe, budget, seed, precision, dataset, split); the
    recipe is ``None`` for the model's own (``--model MODEL``), so a second recipe of a model gets its own rows."""
    config = result.get("config", {})
    recipe = config.get("recipe")
    return (result["model"], None if recipe in (None, result["model"]) else recipe, result.get("budget"),
            result.get("seed"), config.get("precision", "fp32"), result["dataset"], result["split"])


def _finished(result: dict[str, Any]) -> datetime:
    prov = result.get("provenance", {})
    stamp = prov.get("finished") or prov.get("date")
    if not stamp:
        raise LeaderboardError(f"{result['_dir']}/result.json has no provenance.finished time; re-run "
                               "`isp-bench evaluate` for it to be ranked")
    return datetime.fromisoformat(stamp)


def load_results(runs_dir: str | os.PathLike, dataset: str | None = None) -> list[dict[str, Any]]:
    """The results under ``runs_dir`` (for ``dataset``), the newest per :func:`result_key` only."""
    newest: dict[tuple, tuple[datetime, dict[str, Any]]] = {}
    for path in sorted(Path(runs_dir).glob("*/result.json")):
        try:
            result = json.loads(path.read_text())
            result["_dir"] = str(path.parent)
            key, finished = result_key(result), _finished(result)
        except (ValueError, KeyError, TypeError, LeaderboardError) as error:  # one bad file sinks no board
            warnings.warn(f"{path}: left off the leaderboards: not a run's result ({type(error).__name__}: "
                          f"{error}); run its command again, which finishes it, or remove its folder", IspBenchWarning)
            continue
        if dataset is not None and result["dataset"] != dataset:
            continue
        if key not in newest or finished > newest[key][0]:
            newest[key] = (finished, result)
    results = [result for _, result in newest.values()]
    for group in _seed_groups(results):
        for result in group:
            result["_one_of_seeds"] = True  # its label names its seed
    return sorted(results, key=lambda r: (r["model"], str(r.get("budget")), str(r.get("seed"))))


def _seed_groups(results) -> list[list[dict[str, Any]]]:
    """The measured results that differ only by seed, in groups of more than one."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in results:
        if result_kind(r) == "measured":
            model, recipe, budget, _, *rest = result_key(r)
            groups.setdefault((model, recipe, budget, *rest), []).append(r)
    return [sorted(g, key=lambda r: r["seed"]) for g in groups.values() if len(g) > 1]


def _fmt(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}g}"


def _run_link(result: dict[str, Any], out_dir: Path) -> str:
    """Markdown link from a page in ``out_dir`` to the run's result.json (relative, POSIX separators)."""
    target = Path(os.path.relpath(Path(result["_dir"]).resolve() / "result.json", out_dir.resolve()))
    return f"[`{result['run_id']}`]({target.as_posix()})"


def _kind_label(result: dict[str, Any]) -> str:
    if result_kind(result) == "submitted":
        return "submitted"
    _, recipe, budget, seed, precision, *_ = result_key(result)
    return (f"measured ({budget}" + ("" if precision == "fp32" else f", {precision}")
            + ("" if recipe is None else f", recipe {recipe}")
            + (f", seed {seed}" if result.get("_one_of_seeds") else "") + ")")


def build_table(results: list[dict[str, Any]], out_dir: Path) -> tuple[list[str], list[list[str]], dict[str, dict]]:
    """Header, rows and the spec legend for one (dataset, split) group of results.

    Complexity columns: measured parameters and GMACs at 4032×3024 beside the papers' (from the CSV,
    GMACs = printed GFLOPs / the paper's FLOPs per MAC).
    """
    columns = _metric_columns(results)
    header = (["model", "kind", "params M", "params M (paper)", "GMACs @12MP", "GMACs (paper)"]
              + [f"{label} {_arrow(spec)}" for label, spec in columns.values()] + ["run"])
    rows = []
    for r in results:
        card = r.get("model_card") or {}
        rep = reported_for(r["model"]) if result_kind(r) == "measured" else None
        macs, params = card.get("macs_4032x3024"), card.get("params")
        cells = [r["model"], _kind_label(r),
                 _fmt(None if params is None else params / 1e6),
                 _fmt(None if rep is None or rep.params is None else rep.params / 1e6),
                 _fmt(None if macs is None else macs / 1e9, 5),
                 _fmt(None if rep is None or rep.macs is None else rep.macs / 1e9, 5)]
        cells += [_fmt(r["metrics"][key[0]]["mean"]) if _scored_with(r, key) else "" for key in columns]
        cells.append(_run_link(r, out_dir))
        rows.append(cells)
    legend = dict(columns.values())
    return header, rows, legend


def seed_table(results: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]] | None:
    """Header and rows of one split's runs that differ only by seed: per group, each metric's mean over the seeds
    ± its sample standard deviation (n − 1), of the metrics every seed has under one spec; None when no model
    has several seeds."""
    import numpy as np

    groups = _seed_groups(results)
    if not groups:
        return None
    columns = _metric_columns([r for g in groups for r in g])
    header = ["model", "kind", "seeds"] + [f"{label} {_arrow(spec)}" for label, spec in columns.values()]
    rows = []
    for group in groups:
        cells = []
        for key in columns:
            values = [r["metrics"][key[0]]["mean"] for r in group if _scored_with(r, key)]
            cells.append(f"{_fmt(np.mean(values))} ± {_fmt(np.std(values, ddof=1), 2)}" if len(values) == len(group)
                         else "")
        label = _kind_label({**group[0], "_one_of_seeds": False})
        rows.append([group[0]["model"], label, ", ".join(str(r["seed"]) for r in group), *cells])
    return header, rows


def _metric_columns(results: list[dict[str, Any]],
                    names: Sequence[str] | None = None) -> dict[tuple[str, str], tuple[str, dict]]:
    """The metric columns of ``results`` (``names`` only, in that order, when given), keyed by (metric, spec key)
    in the order first met, each with its label and spec: the metric's name, or ``name [spec key]`` where the
    results' specs of that metric differ (such columns are never merged)."""
    specs: dict[tuple[str, str], dict] = {}
    for r in results:
        for name in r["metrics"] if names is None else names:
            if name in r["metrics"]:
                specs.setdefault((name, spec_key(r["metrics"][name]["spec"])), r["metrics"][name]["spec"])
    counts = Counter(name for name, _ in specs)
    return {key: (key[0] if counts[key[0]] == 1 else f"{key[0]} [{key[1]}]", spec) for key, spec in specs.items()}


def _arrow(spec: dict[str, Any]) -> str:
    return "↑" if spec["higher_is_better"] else "↓"


def _scored_with(result: dict[str, Any], key: tuple[str, str]) -> bool:
    """Whether ``result`` has the metric of column ``key`` (metric, spec key) under that spec."""
    m = result["metrics"].get(key[0])
    return m is not None and spec_key(m["spec"]) == key[1]


def subset_table(results: list[dict[str, Any]], out_dir: Path) -> tuple[list[str], list[list[str]]] | None:
    """Header and rows of one split's :data:`SUBSET_METRICS` means per subset (``monitor``, ``real``, ...), from
    each run's ``per_image.parquet``; None when the split has fewer than two subsets.

    The papers score such subsets as separate test sets (CRISPnet's Table 2 the monitor pairs after training on
    monitor data, its Table 1 the real-world pairs after fine-tuning on them), and a model whose last stage
    trains on one subset (CRISPnet's recipe) shows here what that costs the other. Columns are keyed by the
    metric's spec, as in :func:`build_table`."""
    import pandas as pd

    means, sizes = {}, {}  # per run: the subsets' metric means, the subsets' sizes
    for r in results:
        path = Path(r["_dir"]) / "per_image.parquet"
        if path.is_file():
            frame = pd.read_parquet(path)
            if "subset" in frame.columns:
                by_subset = frame.groupby("subset")
                means[r["run_id"]] = by_subset[[n for n in SUBSET_METRICS if n in frame.columns]].mean()
                sizes[r["run_id"]] = by_subset.size()
    subsets = sorted({subset for size in sizes.values() for subset in size.index})
    if len(subsets) < 2:
        return None
    counts = {subset: max(int(size.get(subset, 0)) for size in sizes.values()) for subset in subsets}
    scored = [r for r in results if r["run_id"] in means]
    columns = _metric_columns(scored, SUBSET_METRICS)
    header = ["model", "kind"] + [f"{label} {_arrow(spec)} {subset} ({counts[subset]})"
                                  for label, spec in columns.values() for subset in subsets] + ["run"]
    rows = []
    for r in scored:
        table = means[r["run_id"]]
        rows.append([r["model"], _kind_label(r)]
                    + [_fmt(table.at[subset, key[0]]) if _scored_with(r, key) and subset in table.index else ""
                       for key in columns for subset in subsets]
                    + [_run_link(r, out_dir)])
    return header, rows


def _runnable_models() -> set[str]:
    from isp_bench.models import list_models

    return set(list_models(include_reported_only=False))


def reported_table(dataset: str) -> tuple[list[str], list[list[str]], list[str]]:
    """Header, rows and notes of the papers' own numbers for ``dataset`` (quoted, never measured here).

    One column per leaderboard column of :data:`~isp_bench.models.papers.METRIC_COLUMNS`, in the order
    first met; a cell is empty where the row has no value. "implemented here as": the registry model
    implementing the row, or "reported only". Values as printed. Notes: each column's definition, then
    each distinct note with the paper and table it belongs to.
    """
    rows_ = [r for r in reported_results() if r.dataset == dataset]
    columns: dict[str, Any] = {}
    for res in rows_:
        for label, (col, _, _) in res.columns().items():
            columns.setdefault(label, col)
    runnable = _runnable_models()
    header = ["method (as printed)", "paper", "table", "protocol", "implemented here as"] + list(columns)
    rows, notes = [], []
    for res in rows_:
        values = res.columns()
        rows.append([_escape(res.method), res.paper_short, res.table, _escape(res.protocol),
                     f"`{res.model}`" if res.model in runnable else "reported only"]
                    + [values[c][2] if c in values else "" for c in columns])
        note = f"{res.paper_short} {res.table}: {res.note}"
        if res.note and note not in notes:
            notes.append(note)
    column_notes = [f"**{label}**: " + (f"same definition as our `{col.ours}`; " if col.ours else
                                         "the paper's own metric, no measured value shares this column; ") + col.why
                    for label, col in columns.items()]
    return header, rows, column_notes + [_escape(n) for n in notes]


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _place_labels(ax, points: list[tuple[float, float, str]]) -> None:
    """Annotate each point with its name where the label overlaps no other label nor marker: the first
    free one of eight positions around the point, at growing distances."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    taken = [ax.transData.transform((x, y)) for x, y, _ in points]
    marker_boxes = [(px - 4, py - 4, px + 4, py + 4) for px, py in taken]
    placed: list[tuple[float, float, float, float]] = []

    def overlaps(box):
        return any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed + marker_boxes)

    for x, y, name in sorted(points, key=lambda p: -p[1]):
        for dist in (6, 14, 24, 36, 50):
            for dx, dy in ((1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1)):
                text = ax.annotate(name, (x, y), textcoords="offset points", xytext=(dx * dist, dy * dist),
                                   fontsize=8, ha="left" if dx >= 0 else "right",
                                   va="bottom" if dy > 0 else "top" if dy < 0 else "center",
                                   arrowprops=dict(arrowstyle="-", lw=0.5, color="0.5") if dist > 14 else None)
                bb = text.get_window_extent(renderer)
                box = (bb.x0, bb.y0, bb.x1, bb.y1)
                inside = ax.get_window_extent(renderer)
                if not overlaps(box) and inside.x0 <= box[0] and box[2] <= inside.x1 and inside.y0 <= box[1] \
                        and box[3] <= inside.y1:
                    placed.append(box)
                    break
                text.remove()
            else:
                continue
            break
        else:  # nowhere free: keep the nearest position
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8)


def _plot(results: list[dict[str, Any]], path: Path) -> bool:
    """Quality vs compute: every row with a known MAC count, networks and the no-network pipeline alike
    (symmetric-log GFLOPs axis: 0 for the classic pipeline sits at the origin, networks on a log scale)."""
    points = [(2 * r["model_card"]["macs_4032x3024"] / 1e9, r["metrics"][PLOT_METRIC]["mean"], r["model"])
              for r in results if (r.get("model_card") or {}).get("macs_4032x3024") is not None
              and PLOT_METRIC in r["metrics"]]
    if not points:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for gflops, value, _ in points:
        ax.scatter(gflops, value, marker="s" if gflops == 0 else "o", color="0.3" if gflops == 0 else None, zorder=3)
    ax.set_xscale("symlog", linthresh=10, linscale=0.5)
    largest = max(g for g, _, _ in points)
    ax.set_xlim(-1, max(largest * 3, 100))
    low, high = min(v for _, v, _ in points), max(v for _, v, _ in points)
    pad = max(high - low, 1.0) * 0.15
    ax.set_ylim(low - pad, high + pad)
    ax.set_xlabel("GFLOPs at 4032×3024 (2 × MACs, measured; symlog axis, 0 = no network)")
    ax.set_ylabel(f"{PLOT_METRIC} (dB, higher is better)")
    ax.set_title(f"{results[0]['dataset']} {results[0]['split']}: quality vs compute")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    _place_labels(ax, points)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return True


def build_leaderboard(runs_dir: str | os.PathLike = "runs", dataset: str = "synth",
                      out_dir: str | os.PathLike = "leaderboards") -> Path:
    """Write ``<out_dir>/<dataset>.md`` (+ plot and previews) from the run results and the papers' reported
    results; raise :class:`LeaderboardError` when there are neither. Return its path."""
    results = load_results(runs_dir, dataset)
    rep_header, rep_rows, rep_notes = reported_table(dataset)
    if not results and not rep_rows:
        raise LeaderboardError(f"no result.json for dataset {dataset!r} under {runs_dir} and no reported results "
                               f"for it; run `isp-bench run --model MODEL --dataset {dataset}` first")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    by_split: dict[str, list[dict]] = {}
    for r in results:
        by_split.setdefault(r["split"], []).append(r)
    contents = []
    if results:
        contents.append("the runs scored by isp-bench (\"measured (budget)\": trained and evaluated here with that "
                        "training budget; \"submitted\": an outside model's predictions scored here), the newest "
                        "result per model, recipe, budget, seed and precision, each run id linking its result.json")
    if rep_rows:
        contents.append("the papers' own numbers in a table of their own (\"Reported by the papers\")")
    lines = [f"# Leaderboard: {dataset}", "",
             f"Generated by `isp-bench leaderboard` from `{Path(runs_dir).as_posix()}/*/result.json` and "
             "`isp_bench/data/papers/reported-results.csv`; do not edit by hand. This page holds "
             + " and ".join(contents) + ".", ""]
    if results:
        hashes = sorted({r["manifest"]["content_hash"] for r in results})
        lines += ["Complexity: params M and GMACs @12MP are measured here (multiply-accumulates of conv/linear/"
                  "attention for one 4032×3024 frame, counted by forward hooks); the \"(paper)\" columns are the "
                  "papers' figures, GMACs = the printed GFLOPs divided by the paper's FLOPs per MAC "
                  "(CameraNet Table IV counts 2).", "",
                  f"Manifest content hash(es): {', '.join(f'`{h[:16]}`' for h in hashes)}.", ""]
    else:
        lines += ["No run has been scored on this dataset yet.", ""]
    shown: set[Path] = set()  # the preview copies this page shows; others in its folder are stale
    for split, group in sorted(by_split.items()):
        header, rows, legend = build_table(group, out_dir)
        lines += [f"## {split} split ({group[0]['manifest']['pairs_in_split']} pairs)", "", _markdown_table(header, rows), ""]
        by_seed = seed_table(group)
        if by_seed:
            lines += [f"Across seeds (mean ± sample standard deviation of the seeds' means on the {split} split; the "
                      "spread says how far one seed's row can be trusted):", "", _markdown_table(*by_seed), ""]
        by_subset = subset_table(group, out_dir)
        if by_subset:
            lines += ["By subset (means over each subset's pairs, their number in parentheses; the papers score such "
                      "subsets as separate test sets, and a model whose last training stage sees one subset shows "
                      "here what that costs the other):", "", _markdown_table(*by_subset), ""]
        lines += ["Metric specs:", ""]
        for label, spec in legend.items():
            lines.append(f"- **{label}** (v{spec['version']}): {spec['reference']}; settings "
                         f"`{json.dumps(spec['settings'], sort_keys=True)}`")
        unavailable: dict[str, str] = {}  # one reason per metric (runs on other machines word it differently)
        for r in sorted(group, key=lambda r: r["run_id"]):
            for m, why in r.get("unavailable_metrics", {}).items():
                unavailable.setdefault(m, why.split(";")[0])
        if unavailable:
            lines += ["", "Not scored: " + "; ".join(f"{m}: {why}" for m, why in sorted(unavailable.items()))]
        plot = out_dir / f"{dataset}_{split}_{PLOT_METRIC}_vs_gflops.png"
        if _plot(group, plot):
            lines += ["", f"![{PLOT_METRIC} vs GFLOPs]({plot.name})"]
        previews = []
        for r in group:
            found = sorted(Path(r["_dir"]).glob("previews/*.png"))
            if found:  # named by run: a model's runs at several budgets each show their own
                dest = out_dir / "previews" / dataset / f"{r['run_id']}__{found[0].name}"
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(found[0], dest)
                shown.add(dest)
                image = f"![{r['model']}](previews/{dataset}/{dest.name})"
                previews.append(f"| {r['model']} | {_kind_label(r)} | {image} |")
        if previews:
            lines += ["", "Previews (upper-left: output, lower-right: ground truth):", "", "| model | kind | preview |",
                      "|---|---|---|", *previews]
        lines.append("")
    if rep_rows:
        lines += ["## Reported by the papers", "",
                  "Quoted from the papers, not measured here; each on the paper's own split and protocol. A column "
                  "named like one of our metrics holds values with the same definition; every other column is the "
                  "paper's own metric and never holds a measured value. \"implemented here as\": the registry model that "
                  "implements the row, or \"reported only\" for a method the suite does not implement.", "",
                  _markdown_table(rep_header, rep_rows), "", "Columns and notes:", "", *[f"- {n}" for n in rep_notes], ""]
    path = out_dir / f"{dataset}.md"
    atomic_write_text(path, "\n".join(lines))
    for stale in set((out_dir / "previews" / dataset).glob("*.png")) - shown:
        stale.unlink()  # a preview of a run the page no longer shows (an older test split, a removed run)
    return path


def _best_run(res: ReportedResult, results: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The measured test-split run of ``res.model`` on ``res.dataset`` best on the row's first comparable metric."""
    comparable = [col.ours for col, _, _ in res.columns().values() if col.ours]
    if not comparable:
        return None
    first = comparable[0]
    candidates = [r for r in results if r["model"] == res.model and r["dataset"] == res.dataset
                  and r["split"] == "test" and result_kind(r) == "measured" and first in r["metrics"]]
    if not candidates:
        return None
    sign = 1 if candidates[0]["metrics"][first]["spec"]["higher_is_better"] else -1
    return max(candidates, key=lambda r: sign * r["metrics"][first]["mean"])


#: The ingest option that keeps the camera the papers' rows on a dataset were measured on (CameraNet's Table II:
#: HDR+ Nexus 6P, SID Sony A7S2, FiveK Nikon D700; SID's Fuji is X-Trans, which no registered model takes).
SUBSET_INGEST_OPTIONS = {"hdrplus": '--model "Nexus 6P"', "sid": "--model Sony", "fivek": "--model D700"}


def _scoreboard_row(group: list, results: list[dict[str, Any]], out_dir: Path) -> list[str]:
    """The scoreboard row of one method's reported results on one dataset (one per protocol of its table:
    each protocol's values and Δ prefixed by it when there are several), beside the best measured run."""
    first = group[0]

    def joined(texts: list[str]) -> str:  # one text per protocol of the group, empty ones left out
        return "; ".join(text if len(group) == 1 else f"{res.protocol}: {text}"
                         for res, text in zip(group, texts) if text)

    reported = joined([", ".join(f"{label} {printed}" for label, (_, _, printed) in res.columns().items())
                       for res in group])
    comparable = [[(col.ours, v) for col, v, _ in res.columns().values() if col.ours] for res in group]
    best = _best_run(first, results)
    if not any(comparable):
        cells = ["–", "no metric of the suite has this definition; nothing to compare"]
    elif best is None:
        subset = f" {SUBSET_INGEST_OPTIONS[first.dataset]}" if first.dataset in SUBSET_INGEST_OPTIONS else ""
        cells = ["not yet measured",
                 f"`isp-bench ingest {first.dataset} --root DIR{subset}`, then `isp-bench run --model {first.model} "
                 f"--dataset {first.dataset} --budget paper --device cuda`"]
    else:
        deltas = [", ".join(f"{name} {best['metrics'][name]['mean'] - v:+.3g}" for name, v in pairs
                            if name in best["metrics"]) for pairs in comparable]
        cells = [f"{_run_link(best, out_dir)} ({best.get('budget')} budget)", joined(deltas) or "–"]
    return [_escape(first.method), first.table, f"`{first.model}`", f"[{first.dataset}]({first.dataset}.md)",
            _escape("; ".join(res.protocol for res in group)), reported] + cells


def build_scoreboard(runs_dir: str | os.PathLike = "runs", out_dir: str | os.PathLike = "leaderboards") -> Path:
    """Write ``<out_dir>/README.md``: per seed paper, each reported row of a model the suite implements beside
    the best measured run on the same dataset (test split), Δ = measured − reported per comparable metric, or
    "not yet measured" with the commands that would measure it. Return its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = load_results(runs_dir)
    runnable = _runnable_models()
    pages = sorted(reported_datasets() | {r["dataset"] for r in results})
    lines = ["# Reproduction scoreboard", "",
             f"Generated by `isp-bench leaderboard` from `{Path(runs_dir).as_posix()}/*/result.json` and "
             "`isp_bench/data/papers/reported-results.csv`; do not edit by hand.", "",
             "One table per seed paper: every row of its result tables that a model of the suite implements, "
             "beside the best run measured here on the same dataset's test split (best on the row's first "
             "comparable metric). Δ = measured − reported, only for metrics whose definition is the same as ours "
             "(see the \"Columns and notes\" of each dataset page); the paper's protocol (its own subset and "
             "split) is given so that a reader can judge how close the two test sets are.", "",
             "Dataset pages: " + ", ".join(f"[{d}]({d}.md)" for d in pages) + ".", ""]
    for paper in SEED_PAPERS:
        groups: dict[tuple[str, str, str, str], list] = {}  # one row per method, table, model and dataset
        for res in reported_results():
            if res.paper_short == paper and res.dataset and res.model in runnable:
                groups.setdefault((res.method, res.table, res.model, res.dataset), []).append(res)
        rows = [_scoreboard_row(group, results, out_dir) for group in groups.values()]
        lines += [f"## {paper}", ""]
        header = ["method (as printed)", "table", "model", "dataset", "protocol", "reported", "best measured run",
                  "Δ measured − reported, or how to measure"]
        lines += [_markdown_table(header, rows) if rows else "No row of this paper is implemented here.", ""]
    path = out_dir / "README.md"
    atomic_write_text(path, "\n".join(lines))
    return path


def build_all(runs_dir: str | os.PathLike = "runs", out_dir: str | os.PathLike = "leaderboards") -> list[Path]:
    """Every dataset page (each dataset with results or reported rows) and the scoreboard."""
    datasets = sorted({r["dataset"] for r in load_results(runs_dir)} | reported_datasets())
    return [build_leaderboard(runs_dir, d, out_dir) for d in datasets] + [build_scoreboard(runs_dir, out_dir)]
