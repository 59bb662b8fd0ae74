"""Leaderboards built only from ``runs/*/result.json`` (DESIGN §3).

One markdown table per (dataset, split): params, GFLOPs at 4032×3024 and each metric. A metric
column is keyed by the metric's full spec (name, version, settings): results whose specs differ go
to separate columns and are never merged. Rows the papers report (ModelCard ``reported.results`` for
this dataset) go in a table of their own below the measured ones, one column per metric key, each value
as its paper defines the metric: they are never put in a measured column. A dataset with reported rows
and no runs yet still gets its page. Also writes a quality-vs-GFLOPs plot and copies one preview per model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from isp_bench.errors import IspBenchError
from isp_bench.files import atomic_path, atomic_write_text

PLOT_METRIC = "psnr"


class LeaderboardError(IspBenchError):
    """No results, or results that cannot be put in one table."""


def spec_key(spec: dict[str, Any]) -> str:
    """Short id of a metric spec (name, version, settings, reference)."""
    fields = {k: spec.get(k) for k in ("name", "version", "settings", "reference")}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:6]


def load_results(runs_dir: str | os.PathLike, dataset: str | None = None) -> list[dict[str, Any]]:
    results = []
    for path in sorted(Path(runs_dir).glob("*/result.json")):
        result = json.loads(path.read_text())
        result["_dir"] = str(path.parent)
        if dataset is None or result["dataset"] == dataset:
            results.append(result)
    return results


def _fmt(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}g}"


def build_table(results: list[dict[str, Any]]) -> tuple[list[str], list[list[str]], dict[str, dict]]:
    """Header, rows and the spec legend for one (dataset, split) group of results."""
    columns: dict[tuple[str, str], dict] = {}
    for r in results:
        for name, m in r["metrics"].items():
            columns.setdefault((name, spec_key(m["spec"])), m["spec"])
    names = [n for n, _ in columns]
    labels = {key: key[0] if names.count(key[0]) == 1 else f"{key[0]} [{key[1]}]" for key in columns}
    arrows = {key: "↑" if spec["higher_is_better"] else "↓" for key, spec in columns.items()}
    header = ["model", "kind", "params (M)", "GFLOPs @12MP"] + [f"{labels[k]} {arrows[k]}" for k in columns] + ["run"]
    rows = []
    for r in sorted(results, key=lambda r: r["model"]):
        card = r["model_card"]
        macs, params = card.get("macs_4032x3024"), card.get("params")
        cells = [r["model"], f"measured ({r['budget']})", _fmt(None if params is None else params / 1e6),
                 _fmt(None if macs is None else 2 * macs / 1e9, 5)]
        for key in columns:
            m = r["metrics"].get(key[0])
            cells.append(_fmt(m["mean"]) if m and spec_key(m["spec"]) == key[1] else "")
        cells.append(f"`{r['run_id']}`")
        rows.append(cells)
    legend = {labels[k]: spec for k, spec in columns.items()}
    return header, rows, legend


def reported_results(dataset: str) -> list[tuple[Any, Any]]:
    """(ModelCard, ReportedResult) pairs the model cards quote for ``dataset``, by model name."""
    from isp_bench.models import model_cards

    return [(card, res) for card in model_cards() for res in card.reported.results if res.dataset == dataset]


def reported_datasets() -> set[str]:
    """Datasets for which some model card quotes a paper's results."""
    from isp_bench.models import model_cards

    return {res.dataset for card in model_cards() for res in card.reported.results}


def reported_table(dataset: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the papers' own numbers for ``dataset`` (quoted, never measured here).

    One column per metric key, in the order first met; a cell is empty where the paper gives no value.
    """
    pairs = reported_results(dataset)
    keys = list(dict.fromkeys(k for _, res in pairs for k in res.metrics))
    header = ["model", "source", "params (M, paper)", "GFLOPs (paper)"] + keys + ["note"]
    rows = []
    for card, res in pairs:
        rep = card.reported
        cells = [card.name, res.table, _fmt(None if rep.params is None else rep.params / 1e6), _fmt(rep.gflops, 5)]
        cells += [_fmt(res.metrics[k]) if res.metrics.get(k) is not None else "" for k in keys]
        rows.append(cells + [res.note.replace("|", "\\|")])
    return header, rows


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _plot(results: list[dict[str, Any]], path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # log axis: models without multiply-accumulates (classic) are left out of the plot
    points = [(2 * r["model_card"]["macs_4032x3024"] / 1e9, r["metrics"][PLOT_METRIC]["mean"], r["model"])
              for r in results if (r["model_card"].get("macs_4032x3024") or 0) > 0 and PLOT_METRIC in r["metrics"]]
    if not points:
        return False
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for gflops, value, name in points:
        ax.scatter(gflops, value)
        ax.annotate(name, (gflops, value), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("GFLOPs at 4032×3024 (2 × MACs, measured)")
    ax.set_ylabel(f"{PLOT_METRIC} (dB, higher is better)")
    ax.set_title(f"{results[0]['dataset']} {results[0]['split']}: quality vs compute")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return True


def build_leaderboard(runs_dir: str | os.PathLike = "runs", dataset: str = "synth",
                      out_dir: str | os.PathLike = "leaderboards") -> Path:
    """Write ``<out_dir>/<dataset>.md`` (+ plot and previews) from the run results and the papers' reported
    results; raise :class:`LeaderboardError` when there are neither. Return its path."""
    results = load_results(runs_dir, dataset)
    rep_header, rep_rows = reported_table(dataset)
    if not results and not rep_rows:
        raise LeaderboardError(f"no result.json for dataset {dataset!r} under {runs_dir} and no reported results "
                               f"for it; run `isp-bench run --model MODEL --dataset {dataset}` first")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    by_split: dict[str, list[dict]] = {}
    for r in results:
        by_split.setdefault(r["split"], []).append(r)
    hashes = sorted({r["manifest"]["content_hash"] for r in results})
    lines = [f"# Leaderboard: {dataset}", "",
             "Generated by `isp-bench leaderboard` from `runs/*/result.json` and the model cards; do not edit by "
             "hand. \"measured (budget)\" rows were trained and scored by isp-bench with the named training budget; "
             "the papers' own numbers are in \"Reported by the papers\" below. GFLOPs = 2 × multiply-accumulates "
             "at 4032×3024, counted by forward hooks.", "",
             f"Manifest content hash(es): {', '.join(f'`{h[:16]}`' for h in hashes)}." if hashes
             else "No measured runs for this dataset yet.", ""]
    for split, group in sorted(by_split.items()):
        header, rows, legend = build_table(group)
        lines += [f"## {split} split ({group[0]['manifest']['pairs_in_split']} pairs)", "", _markdown_table(header, rows), ""]
        lines += ["Metric specs:", ""]
        for label, spec in legend.items():
            lines.append(f"- **{label}** (v{spec['version']}): {spec['reference']}; settings "
                         f"`{json.dumps(spec['settings'], sort_keys=True)}`")
        unavailable = sorted({f"{m}: {why.split(';')[0]}" for r in group for m, why in r.get("unavailable_metrics", {}).items()})
        if unavailable:
            lines += ["", "Not scored: " + "; ".join(unavailable)]
        plot = out_dir / f"{dataset}_{split}_{PLOT_METRIC}_vs_gflops.png"
        if _plot(group, plot):
            lines += ["", f"![{PLOT_METRIC} vs GFLOPs]({plot.name})"]
        previews = []
        for r in sorted(group, key=lambda r: r["model"]):
            found = sorted(Path(r["_dir"]).glob("previews/*.png"))
            if found:
                dest = out_dir / "previews" / dataset / f"{r['model']}__{found[0].name}"
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(found[0], dest)
                previews.append(f"| {r['model']} | ![{r['model']}](previews/{dataset}/{dest.name}) |")
        if previews:
            lines += ["", "Previews (upper-left: output, lower-right: ground truth):", "", "| model | preview |",
                      "|---|---|", *previews]
        lines.append("")
    if rep_rows:
        lines += ["## Reported by the papers", "",
                  "Quoted from the papers (or their authors' code), not measured here. Each column is a metric key, "
                  "each value as the paper defines it (its own split, colour space, crop and implementation): "
                  "compare with the measured columns only where the definitions match.", "",
                  _markdown_table(rep_header, rep_rows), ""]
    path = out_dir / f"{dataset}.md"
    atomic_write_text(path, "\n".join(lines))
    return path
