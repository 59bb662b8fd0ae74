"""Generic raw + camera JPEG pairs: how a user brings their own captures.

Layout: any folder tree of raw files (DNG, ARW, CR2, NEF, RAF, …) each with a camera JPEG of the same
stem beside it (``IMG_0001.dng`` + ``IMG_0001.jpg``), as an iPhone ProCam / Android capture app or
``capture/`` writes them. A raw without a JPEG is kept with no target and the flag ``no_target``.

Pairs: role ``mimic_isp`` (raw → the phone's own JPEG, CRISPnet-style). The scene id is the file's
path without extension; the split is a stable hash of it (80 % train, 10 % val, 10 % test, salt
:data:`SPLIT_SALT`), so adding or removing captures never moves the others and listing order never
matters. Rotated JPEGs are flagged as in every source (``rotated_target``, ``target_exif_orientation``).
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any, Iterator

from isp_bench.datasets._common import RAW_EXTENSIONS, find_root, flag_exif_orientation, hash_split, rel
from isp_bench.datasets.base import DatasetSource, LayoutReport, PairRecord, register_source
from isp_bench.raw.capture import camera_name

SPLIT_SALT = "isp-bench/pairs/v1"
SPLIT_FRACTIONS = (("train", 0.8), ("val", 0.1), ("test", 0.1))
_JPEG_SUFFIXES = (".jpg", ".jpeg")


def _raw_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in RAW_EXTENSIONS
                  and not p.name.startswith("."))


def _one_raw_per_stem(raws: list[Path]) -> list[tuple[Path, bool]]:
    """``(raw, others ignored)`` per stem: of one capture kept in several raw formats (the camera's file and its DNG
    conversion, say) the camera's own file is the input; a pair id is the stem, so two would collide."""
    by_stem: dict[Path, list[Path]] = {}
    for raw in raws:
        by_stem.setdefault(raw.with_suffix(""), []).append(raw)
    return [(min(same, key=lambda r: (r.suffix.lower() == ".dng", r.name)), len(same) > 1)
            for same in by_stem.values()]


def _jpeg_for(raw: Path) -> Path | None:
    for cand in sorted(raw.parent.glob(glob.escape(raw.stem) + ".*")):  # a stem may hold [ ] * ?
        if cand.suffix.lower() in _JPEG_SUFFIXES:
            return cand
    return None


@register_source
class PairsSource(DatasetSource):
    name = "pairs"
    title = "Your own raw + camera JPEG pairs (same stem, any folder tree)"
    layout = "<any folders>/<stem>.{dng,arw,cr2,nef,raf,...} beside <stem>.jpg"
    licence = "Yours: the licence of the captures you bring (treated as private)"
    licence_class = "user"
    redistributable = False
    url = "your own captures (see capture/README.md)"

    def pairs(self, root: Path) -> Iterator[PairRecord]:
        root = find_root(root, lambda p: bool(_raw_files(p)), "a folder of raw files with same-stem JPEGs")
        for raw, others in _one_raw_per_stem(_raw_files(root)):
            scene = rel(raw.with_suffix(""), root)
            jpeg = _jpeg_for(raw)
            yield PairRecord(pair_id=scene, scene=scene, split=hash_split(scene, SPLIT_SALT, SPLIT_FRACTIONS),
                             role="mimic_isp", input_path=rel(raw, root),
                             target_path=rel(jpeg, root) if jpeg else None,
                             flags=([] if jpeg else ["no_target"]) + (["other_raw_formats_ignored"] if others else []))

    def finish_row(self, row: dict[str, Any], target_info: dict[str, Any] | None) -> dict[str, Any]:
        row = super().finish_row(row, target_info)
        flag_exif_orientation(row, target_info)
        if target_info is not None:
            camera, _ = camera_name(row.get("make"), row.get("model"), row.get("unique_camera_model"))
            row["target_device"] = f"{camera or 'camera'} JPEG"
        return row

    def check_layout(self, root: Path) -> LayoutReport:
        root = find_root(root, lambda p: bool(_raw_files(p)), "a folder of raw files with same-stem JPEGs")
        raws = [raw for raw, _ in _one_raw_per_stem(_raw_files(root))]
        missing = [rel(r.with_suffix(".jpg"), root) for r in raws if _jpeg_for(r) is None]
        return LayoutReport(self.name, str(root), found={"raw files": len(raws), "jpegs": len(raws) - len(missing)},
                            expected={"jpegs": len(raws)}, missing=missing)
