"""HDR+ burst photography dataset (Hasinoff et al., SIGGRAPH Asia 2016).

Published layout: ``bursts/<id>/payload_N000.dng …`` (the raw burst) and
``results_<date>/<id>/{merged.dng, final.jpg, reference_frame.txt}`` (HDR+'s merged raw, its
finished JPEG and the index of the burst's reference frame). Several results versions may sit side
by side: the latest ``results_*`` is the target unless ``--results NAME`` picks one; the rows record
which (``target_device``, ``extra.results``).

Pairs per burst: ``merged`` (merged.dng → final.jpg, CameraNet's setting) and, when the burst is
present, ``reference_frame`` (the reference payload frame → final.jpg). The merged raw has other
black/white levels than the payload frames: each file's own levels are read, never shared.
final.jpg may be rotated or cropped against the raw: ``rotated_target`` / ``cropped_target`` /
``resized_target`` / ``default_crop_applied`` say which.

The device is not in the folder names: it is read from each merged.dng's EXIF Model, stored in
``subset``, and ``--model "Nexus 6P"`` (CameraNet's subset) keeps only that device. Split: the
paper's 665/240 lists are not public, so isp-bench freezes its own: a salted sha256 of the burst id
puts 665/905 of the bursts in train and the rest in test (:data:`SPLIT_SALT`), the same rule for
every device, independent of listing order.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

from isp_bench.datasets._common import classify_target_geometry, exif_value, find_root, hash_split, rel
from isp_bench.datasets.base import DatasetSource, LayoutReport, PairRecord, register_source
from isp_bench.errors import DatasetError

SPLIT_SALT = "isp-bench/hdrplus/v1"
SPLIT_FRACTIONS = (("train", 665 / 905), ("test", 240 / 905))
_RESULTS = re.compile(r"^results_\w+$")


def _results_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and _RESULTS.match(p.name))


def _is_root(p: Path) -> bool:
    return (p / "bursts").is_dir() or bool(_results_dirs(p))


def _reference_index(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


@register_source
class HdrPlusSource(DatasetSource):
    name = "hdrplus"
    title = "HDR+ burst photography dataset: raw bursts, HDR+ merged raw and final JPEG"
    layout = "bursts/<id>/payload_N000.dng …, results_<date>/<id>/{merged.dng, final.jpg, reference_frame.txt}"
    licence = "CC BY-SA 4.0 (Google)"
    licence_class = "open"
    redistributable = True
    url = "https://hdrplusdata.org/dataset.html (gs://hdrplusdata)"
    citation = "S. W. Hasinoff et al. Burst photography for high dynamic range and low-light imaging on mobile cameras. SIGGRAPH Asia 2016."
    options_help = {"model": "keep only bursts whose EXIF Model contains this (e.g. 'Nexus 6P', CameraNet's subset)",
                    "results": "results folder to use as the target (default: the latest results_*)"}
    notes = "Frozen hash split (665:240) of our own; the CameraNet Nexus 6P lists are not public."

    def _root(self, root: Path) -> Path:
        return find_root(root, _is_root, "the HDR+ dataset (bursts/ and results_*/ folders)", names=("20171106",))

    def _results(self, root: Path) -> Path | None:
        found = _results_dirs(root)
        wanted = self.options.get("results")
        if wanted:
            match = [p for p in found if p.name == wanted]
            if not match:
                raise DatasetError(f"{root}: no results folder {wanted!r}; found {[p.name for p in found]}")
            return match[0]
        return found[-1] if found else None

    def _keep(self, model: str | None) -> bool:
        wanted = self.options.get("model")
        return wanted is None or (model is not None and str(wanted).lower() in model.lower())

    def pairs(self, root: Path) -> Iterator[PairRecord]:
        base = self._root(root)  # paths stay relative to the folder given to the ingest
        results = self._results(base)
        if results is None:
            raise DatasetError(f"{root}: no results_<date>/ folder, so no target JPEGs; download the results "
                               "folder beside bursts/")
        for burst_dir in sorted(p for p in results.iterdir() if p.is_dir()):
            burst = burst_dir.name
            merged = burst_dir / "merged.dng"
            model = exif_value(merged, "model") if merged.is_file() else None
            if not self._keep(model):
                continue
            ref = _reference_index(burst_dir / "reference_frame.txt")
            payloads = sorted((base / "bursts" / burst).glob("payload_N*.dng"))
            common = dict(scene=burst, split=hash_split(burst, SPLIT_SALT, SPLIT_FRACTIONS), subset=model,
                          target_device=f"Google HDR+ ({results.name})", target_path=rel(burst_dir / "final.jpg", root))
            extra = {"results": results.name, "reference_frame": ref, "burst_frames": len(payloads)}
            yield PairRecord(pair_id=f"{burst}/merged", role="merged", input_path=rel(merged, root),
                             exposure_ratio=1.0, extra=extra, **common)
            if ref is not None and payloads:
                frame = base / "bursts" / burst / f"payload_N{ref:03d}.dng"
                yield PairRecord(pair_id=f"{burst}/reference_frame", role="reference_frame",
                                 input_path=rel(frame, root), exposure_ratio=1.0, extra=extra, **common)

    def finish_row(self, row: dict[str, Any], target_info: dict[str, Any] | None) -> dict[str, Any]:
        return classify_target_geometry(row, target_info)

    def check_layout(self, root: Path) -> LayoutReport:
        root = self._root(root)
        results = self._results(root)
        bursts = sorted(p.name for p in (root / "bursts").iterdir() if p.is_dir()) if (root / "bursts").is_dir() else []
        done = sorted(p.name for p in results.iterdir() if p.is_dir()) if results else []
        missing = [] if results else ["results_<date>/ (target JPEGs)"]
        for b in done:
            for f in ("merged.dng", "final.jpg", "reference_frame.txt"):
                if not (results / b / f).is_file():
                    missing.append(f"{results.name}/{b}/{f}")
        missing += [f"bursts/{b}/" for b in done if b not in set(bursts)]
        return LayoutReport(self.name, str(root), found={"bursts": len(bursts), "results": len(done)},
                            expected={"bursts": len(done)}, missing=missing)
