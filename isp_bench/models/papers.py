"""The papers' published numbers, read from one file: ``isp_bench/data/papers/reported-results.csv``.

That CSV (transcribed from DeepISP, CameraNet and CRISPnet; see NOTICE and ``../shared/papers/README.md``)
is the only place a published figure lives. Model cards (``ModelCard.reported``), ``isp-bench models``
and the leaderboards read it through this module; nothing is typed into the model modules.

One line of the CSV is one value (long format): ``paper, table, method, model, dataset, protocol, metric,
value, note``. Lines with the same (paper, table, method, model, dataset, protocol) form one
:class:`ReportedResult` (one row of a paper's table). Lines without a dataset are complexity figures
(``params_millions``, ``gflops``, ``seconds_per_frame``) and fill :class:`Reported`.

A reported metric is compared with one of ours only where the definitions match: :data:`METRIC_COLUMNS`
maps every (paper, metric) of the CSV to the leaderboard column it goes in and, where the definition
is the same, to our metric's name.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass, field
from pathlib import Path

from isp_bench.errors import IspBenchError

REPORTED_CSV = Path(__file__).resolve().parent.parent / "data" / "papers" / "reported-results.csv"
"""The papers' result tables, one value a line (package data)."""

COMPLEXITY_METRICS = ("params_millions", "gflops", "seconds_per_frame")

FLOPS_PER_MAC = {"CameraNet": 2}
"""FLOPs the paper counts per multiply-accumulate, for each paper that prints FLOPs. CameraNet Table IV:
2, checked on DeepISP-Net, whose 12 869.79 GFLOPs are 2 × our 6 433.9 GMACs to 0.02 % (the rest is
element-wise work our counter leaves out)."""


class ReportedResultsError(IspBenchError):
    """The papers' CSV has a line that cannot be read or that no leaderboard column takes."""


@dataclass(frozen=True)
class MetricColumn:
    """Where a paper's metric goes on a leaderboard.

    ``column``: the column label (a metric name of ours only when ``ours`` is set); ``ours``: our
    metric with the same definition, or ``None`` when the paper's differs or is not stated (then the
    column is the paper's alone and never holds a measured value); ``why``: the reason, in words.
    """

    column: str
    ours: str | None
    why: str


_SSIM_UNSTATED = "the paper does not say which SSIM (grey or per-channel RGB, window, implementation)"

METRIC_COLUMNS: dict[tuple[str, str], MetricColumn] = {
    ("DeepISP", "psnr"): MetricColumn("psnr", "psnr", "PSNR over RGB on [0, 1]; linear or sRGB as the protocol says"),
    ("DeepISP", "mos_full"): MetricColumn("MOS full image (AMT, 1–5)", None, "human opinion scores; not measured here"),
    ("DeepISP", "mos_patch"): MetricColumn("MOS patch (AMT, 1–5)", None, "human opinion scores; not measured here"),
    ("DeepISP", "deepiqa"): MetricColumn("DeepIQA (1–5)", None, "Bosse et al.'s no-reference network; not in the suite"),
    ("CameraNet", "psnr"): MetricColumn("psnr", "psnr", "PSNR over RGB on [0, 1]"),
    ("CameraNet", "ssim"): MetricColumn("SSIM (CameraNet, variant unstated)", None, _SSIM_UNSTATED),
    ("CameraNet", "scielab"): MetricColumn(
        "S-CIELAB (ISETCam scielabRGB)", None,
        "computed with the L3 authors' ISETCam scielabRGB, not the S-CIELAB 1.1.1 of our `scielab`"),
    ("CRISPnet", "psnr"): MetricColumn("psnr", "psnr", "PSNR over RGB on [0, 1]"),
    ("CRISPnet", "ssim"): MetricColumn("SSIM (CRISPnet, variant unstated)", None, _SSIM_UNSTATED),
    ("CRISPnet", "delta_e76"): MetricColumn(
        "delta_e76_rms", "delta_e76_rms",
        "CRISPnet's ΔE*ab76 is 'the RMS error in CIELAB': the CIE 1976 ΔE*ab of each pixel, root-mean-square over "
        "pixels, which is our `delta_e76_rms`; our `delta_e76` (mean over pixels) is a different number"),
    ("PyNET", "psnr"): MetricColumn("psnr", "psnr", "PSNR over RGB on [0, 1], averaged over patches"),
    ("PyNET", "ms_ssim"): MetricColumn(
        "MS-SSIM (PyNET msssim.py)", None, "the port's own msssim.py on RGB; our `ms_ssim` is on rgb2gray grey"),
}


@dataclass(frozen=True)
class ReportedResult:
    """One row of a paper's results table: a method's values under one protocol.

    ``metrics`` maps the CSV's metric name to the value as printed; :meth:`columns` gives each its
    leaderboard column (:data:`METRIC_COLUMNS`).
    """

    paper: str
    table: str
    method: str
    model: str  # registry name implementing the row, "" for a method the suite does not implement
    dataset: str  # dataset source, "" for complexity rows
    protocol: str
    metrics: dict[str, float]
    note: str = ""
    printed: dict[str, str] = field(default_factory=dict, compare=False)  # metric → the value as printed

    @property
    def paper_short(self) -> str:
        """The paper's short name (``CameraNet``), the text before its citation."""
        return self.paper.split(" (")[0]

    def columns(self) -> dict[str, tuple[MetricColumn, float]]:
        """Leaderboard column label → (its :class:`MetricColumn`, the reported value, the value as printed)."""
        return {METRIC_COLUMNS[(self.paper_short, m)].column: (METRIC_COLUMNS[(self.paper_short, m)], v,
                                                                self.printed.get(m, f"{v:g}"))
                for m, v in self.metrics.items()}


@dataclass(frozen=True)
class Reported:
    """What the papers state about one model's size and speed, and their result rows for it.

    ``params`` (count), ``gflops`` and ``seconds_per_frame`` come from the complexity lines of the CSV
    (``source``: the paper and table, ``conditions``: its row, frame, hardware and note); ``flops_per_mac`` is that paper's convention
    (:data:`FLOPS_PER_MAC`); ``results`` are the result rows whose ``model`` is this model.
    """

    params: int | None = None
    gflops: float | None = None
    seconds_per_frame: float | None = None
    flops_per_mac: int | None = None
    source: str = ""
    conditions: str = ""
    results: tuple[ReportedResult, ...] = field(default_factory=tuple)

    @property
    def macs(self) -> float | None:
        """Reported multiply-accumulates: ``gflops`` × 1e9 / the paper's FLOPs per MAC."""
        if self.gflops is None or self.flops_per_mac is None:
            return None
        return self.gflops * 1e9 / self.flops_per_mac


@functools.lru_cache(maxsize=1)
def reported_results() -> tuple[ReportedResult, ...]:
    """Every row of the CSV, grouped into table rows, in file order (complexity rows included)."""
    groups: dict[tuple[str, ...], dict] = {}
    with open(REPORTED_CSV, newline="", encoding="utf-8") as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):
            where = f"{REPORTED_CSV}, line {line}"
            try:
                value = float(row["value"])
            except ValueError:
                raise ReportedResultsError(f"{where}: value {row['value']!r} is not a number") from None
            paper_short = row["paper"].split(" (")[0]
            metric = row["metric"]
            if (paper_short, metric) not in METRIC_COLUMNS and metric not in COMPLEXITY_METRICS:
                raise ReportedResultsError(
                    f"{where}: metric {metric!r} of {paper_short} has no leaderboard column; add "
                    f"({paper_short!r}, {metric!r}) to isp_bench.models.papers.METRIC_COLUMNS")
            key = tuple(row[k] for k in ("paper", "table", "method", "model", "dataset", "protocol"))
            group = groups.setdefault(key, {"metrics": {}, "printed": {}, "notes": []})
            if metric in group["metrics"]:
                raise ReportedResultsError(f"{where}: {metric!r} of {row['method']!r} given twice")
            group["metrics"][metric] = value
            group["printed"][metric] = row["value"]
            if row["note"] and row["note"] not in group["notes"]:
                group["notes"].append(row["note"])
    return tuple(ReportedResult(*key, metrics=g["metrics"], note="; ".join(g["notes"]), printed=g["printed"])
                 for key, g in groups.items())


@functools.lru_cache(maxsize=None)
def reported_for(model: str) -> Reported:
    """The papers' figures for registry name ``model`` (empty :class:`Reported` when they give none)."""
    rows = [r for r in reported_results() if r.model == model]
    complexity = [r for r in rows if not r.dataset]
    if len(complexity) > 1:
        raise ReportedResultsError(f"{REPORTED_CSV}: {model!r} has complexity figures in more than one table "
                                   f"({', '.join(r.paper_short + ' ' + r.table for r in complexity)})")
    results = tuple(r for r in rows if r.dataset)
    if not complexity:
        return Reported(results=results)
    c = complexity[0]
    params = c.metrics.get("params_millions")
    return Reported(
        params=None if params is None else round(params * 1e6),
        gflops=c.metrics.get("gflops"),
        seconds_per_frame=c.metrics.get("seconds_per_frame"),
        flops_per_mac=FLOPS_PER_MAC.get(c.paper_short),
        source=f"{c.paper_short} {c.table}",
        conditions="; ".join(x for x in (f"row {c.method!r}", c.protocol, c.note) if x),
        results=results,
    )


def reported_datasets() -> set[str]:
    """Dataset sources some paper reports results on."""
    return {r.dataset for r in reported_results() if r.dataset}
