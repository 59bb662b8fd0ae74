"""Score a folder of predictions against a folder of targets: per-image Parquet + summary."""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from isp_bench.errors import IspBenchWarning
from isp_bench.images import IMAGE_SUFFIXES

from ._registry import (ImageTooSmallError, MetricError, MetricInputError, MetricSpec, MetricWeightsError, _check_range,
                        default_suite, get_metric)
from .pair import PairWork


class ScoreError(MetricError):
    """A folder cannot be scored (missing folder, no pairs, unreadable image)."""


def read_srgb(path: str | os.PathLike) -> np.ndarray:
    """Read an RGB(A) image of 8- or 16-bit integers or of floats in [0, 1] as float64 H×W×3 in [0, 1]
    (alpha dropped). A 16-bit image whose values all lie within 0–255, not all 0, is read as it is, near-black, with an
    :class:`~isp_bench.errors.IspBenchWarning`: it is most likely 8-bit data saved as 16-bit."""
    from isp_bench.images import ImageFileError, read_image

    try:
        arr = read_image(path)
    except ImageFileError as exc:
        raise ScoreError(str(exc)) from exc
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ScoreError(f"{path}: expected an RGB image, got shape {arr.shape}; convert it to RGB")
    arr = arr[..., :3]
    fix = "save it as an 8- or 16-bit PNG or TIFF, or as a float TIFF with values in [0, 1]"
    if arr.dtype == np.uint8:
        return arr / 255.0
    if arr.dtype == np.uint16:
        if 0 < arr.max() <= 255:  # an all-black image reads the same at either depth
            warnings.warn(f"{path}: its 16-bit values all lie within 0–255, so it is probably 8-bit data saved as "
                          "16-bit and scores as near-black; save it as 8-bit, or multiply it by 257", IspBenchWarning)
        return arr / 65535.0
    if np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
        try:
            _check_range(arr, 1.0, str(path), "float pixels must lie in [0, 1]", fix, nan_fix=fix)
        except MetricInputError as exc:
            raise ScoreError(str(exc)) from None
        return arr
    raise ScoreError(f"{path}: unsupported pixel type {arr.dtype}; {fix}")


def score_pair(pred, target, metrics: Sequence[str | MetricSpec] | None = None, *,
               unavailable: dict[str, str] | None = None) -> dict[str, float]:
    """Score one (pred, target) pair with several metrics, sharing the work they have in common.

    One :class:`~isp_bench.metrics.pair.PairWork` holds the validated pair; each metric's spec
    first announces the shared passes it will use (``MetricSpec.plan``: e.g. one sRGB decoding for
    ΔE*ab 1976 and S-CIELAB), then scores from the shared, cached results
    (``MetricSpec.on_pair``: the 8-bit grey and the full-resolution SSIM statistics that MS-SSIM
    reuses, ...). The values are exactly those of the individual metric calls.

    Parameters
    ----------
    pred, target : array_like
        H×W×3 sRGB images in [0, 1] (numpy or torch).
    metrics : sequence of str or MetricSpec, optional
        Registry names, or specs (e.g. derived with :meth:`MetricSpec.with_settings`); the default
        suite (:data:`isp_bench.metrics.DEFAULT_METRICS`) when omitted. No-reference metrics score
        ``pred``.
    unavailable : dict, optional
        When given, a metric whose weights are missing (:class:`MetricWeightsError`) or which cannot
        score images this small (:class:`ImageTooSmallError`: MS-SSIM on MSR's 132×220 frames) is left
        out of the result and its reason recorded here instead of raising; a metric already recorded
        here is not tried again, so a split scores each metric on all of its images or on none.

    Returns
    -------
    dict
        ``{name: value}`` in the order of ``metrics``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.full((16, 16, 3), 0.5)
    >>> score_pair(x, x, ["psnr", "delta_e76"])
    {'psnr': inf, 'delta_e76': 0.0}
    """
    specs = [m if isinstance(m, MetricSpec) else get_metric(m)
             for m in (metrics if metrics is not None else default_suite())]
    if unavailable is not None:
        specs = [s for s in specs if s.name not in unavailable]
    work = PairWork(pred, target)
    for spec in specs:
        spec.plan_work(work)
    out: dict[str, float] = {}
    for spec in specs:
        try:
            out[spec.name] = float(spec.score_work(work))
        except (MetricWeightsError, ImageTooSmallError) as exc:
            if unavailable is None:
                raise
            unavailable[spec.name] = str(exc)
    return out


def pair_by_stem(pred_dir: str | os.PathLike, target_dir: str | os.PathLike):
    """``(pairs, only_pred, only_target)``: files matched by stem, sorted by stem."""
    def index(d: Path) -> dict[str, Path]:
        if not d.is_dir():
            raise ScoreError(f"{d}: not a folder")
        out: dict[str, Path] = {}
        for f in sorted(d.iterdir()):
            if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file():
                if f.stem in out:
                    raise ScoreError(f"{d}: two images share the stem {f.stem!r} ({out[f.stem].name}, {f.name}); keep one")
                out[f.stem] = f
        return out

    p, t = index(Path(pred_dir)), index(Path(target_dir))
    stems = sorted(set(p) & set(t))
    return [(s, p[s], t[s]) for s in stems], sorted(set(p) - set(t)), sorted(set(t) - set(p))


def score_folders(
    pred_dir: str | os.PathLike,
    target_dir: str | os.PathLike,
    metrics: Sequence[str] | None = None,
    out: str | os.PathLike | None = None,
    *,
    workers: int | None = None,
    scheduler: str = "local",
):
    """Score every prediction against the target with the same file stem.

    Parameters
    ----------
    pred_dir, target_dir : path
        Folders of sRGB images (PNG, JPEG, TIFF, BMP).
    metrics : sequence of str, optional
        Registry names; the default suite (:data:`isp_bench.metrics.DEFAULT_METRICS`) when
        omitted. No-reference metrics score the prediction alone.
    out : path, optional
        Per-image Parquet to write (atomically); its key-value metadata holds the metric specs.
    workers, scheduler : optional
        Where the pairs are scored (:func:`isp_bench.parallel.executor`): ``local`` (the default)
        scores in this process unless ``workers`` > 1 asks for a process pool; ``dask`` or
        ``tcp://HOST:PORT`` fan the pairs out over a Dask cluster whose workers see both folders.
        The scores are the same whichever runs them (rows in stem order).

    Returns
    -------
    pandas.DataFrame
        One row per pair (``stem``, ``pred``, ``target``, one column per scored metric);
        ``df.attrs["specs"]`` holds ``spec.to_dict()`` per scored metric and
        ``df.attrs["unavailable"]`` the metrics that could not run (missing weights, images too small) with the
        reason, as :func:`isp_bench.metrics.describe_unscored` prints them.
    """
    import pandas as pd

    from isp_bench.parallel import TaskLost, executor, in_process_by_default

    if out is not None and Path(out).is_dir():  # before the scoring, not after
        raise ScoreError(f"{out}: is a folder; --out names the Parquet file to write, e.g. "
                         f"{Path(out) / 'scores.parquet'}")
    if out is not None and Path(out).suffix.lower() != ".parquet":  # a .csv would hold Parquet bytes
        raise ScoreError(f"{out}: scores are written as Parquet; name the file {Path(out).with_suffix('.parquet')} "
                         "(pandas.read_parquet(...).to_csv() makes a CSV of it)")
    names = list(metrics) if metrics else list(default_suite())
    specs = [get_metric(n) for n in names]
    pairs, only_pred, only_target = pair_by_stem(pred_dir, target_dir)
    if not pairs:
        raise ScoreError(
            f"no prediction in {pred_dir} has a target with the same file stem in {target_dir}; "
            "name predictions after their targets (e.g. 0001.png ↔ 0001.png)"
        )
    rows: dict[str, dict] = {}
    unavailable: dict[str, str] = {}
    jobs = [(stem, pp, tp, tuple(names)) for stem, pp, tp in pairs]
    with executor(scheduler, in_process_by_default(workers, scheduler),
                  preload=("isp_bench.metrics",)) as ex:
        for (stem, pp, _, _), outcome in ex.map_unordered(_score_files, jobs):
            if isinstance(outcome, TaskLost):
                raise ScoreError(f"{pp}: {outcome}")
            rows[stem], missing = outcome
            unavailable.update(missing)
    df = pd.DataFrame([rows[stem] for stem, _, _ in pairs]).drop(columns=[n for n in unavailable], errors="ignore")
    df.attrs["specs"] = {s.name: s.to_dict() for s in specs if s.name not in unavailable}
    df.attrs["unavailable"] = dict(sorted(unavailable.items()))
    df.attrs["unpaired"] = {"pred_only": only_pred, "target_only": only_target}
    if out is not None:
        write_scores(df, out)
    return df


def _score_files(job: tuple[str, Path, Path, tuple[str, ...]]) -> tuple[dict, dict[str, str]]:
    """One pair's row (stem, paths, scores) and the metrics it could not run (missing weights)."""
    stem, pp, tp, names = job
    pred, target = read_srgb(pp), read_srgb(tp)
    if pred.shape != target.shape:
        raise ScoreError(f"{pp}: shape {pred.shape} differs from its target {tp} {target.shape}")
    unavailable: dict[str, str] = {}
    row = {"stem": stem, "pred": str(pp), "target": str(tp)}
    row.update(score_pair(pred, target, [get_metric(n) for n in names], unavailable=unavailable))
    return row, unavailable


def write_scores(df, out: str | os.PathLike) -> Path:
    """Write per-image scores to Parquet via a temporary file, with the specs in the metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from isp_bench import __version__

    from isp_bench.files import atomic_path

    out = Path(out)
    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[b"isp_bench.version"] = __version__.encode()
    meta[b"isp_bench.metric_specs"] = json.dumps(df.attrs.get("specs", {}), ensure_ascii=False).encode()
    table = table.replace_schema_metadata(meta)
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp)
    return out


def summary_table(df) -> str:
    """A plain-text table: metric, mean, direction, version, pinned settings."""
    specs = df.attrs.get("specs", {})
    lines = [f"{len(df)} image pair(s)", f"{'metric':<14} {'mean':>12}  {'dir':<3} {'ver':<3} reference / settings"]
    for name, spec in specs.items():
        vals = df[name].to_numpy(dtype=float)
        mean = float(np.mean(vals)) if len(vals) else math.nan
        arrow = "↑" if spec["higher_is_better"] else "↓"
        settings = ", ".join(f"{k}={v}" for k, v in spec["settings"].items())
        lines.append(f"{name:<14} {mean:>12.6g}  {arrow:<3} {spec['version']:<3} {spec['reference']}")
        lines.append(f"{'':<14} {'':>12}  {'':<3} {'':<3} {settings}")
    return "\n".join(lines)
