"""S7-ISP (DeepISP, Schwartz et al. 2018): Samsung Galaxy S7 raw + camera JPEG, 110 scenes.

Published layout: ``S7-ISP-Dataset/<YYYYMMDD_HHMMSS>/`` holding ``medium_exposure.dng``,
``medium_exposure.jpg``, ``short_exposure1.dng`` (note the ``1``) and ``short_exposure.jpg``.

Pairs per scene: ``low_light`` (short raw → medium JPEG, DeepISP's low-light task) and ``well_lit``
(medium raw → medium JPEG, DeepISP's "mimic the ISP" task, ``extra.task == "mimic_isp"``). The
exposure ratio of a low-light pair is read from the two DNGs' EXIF ExposureTime.

Split: the DeepISP authors published none; the validation and test scenes CURL (Moran et al.)
published (10 + 10, ``isp_bench/datasets/lists/s7isp/s7_curl_val_test_scenes.csv``), every other scene train.

Traps: the data are 10-bit GRBG (checked per file: ``unexpected_cfa`` / ``unexpected_white_level``
flag a deviation); some JPEGs are stored rotated 90° against the raw: the shapes are compared, the
target is flagged ``rotated_target`` and ``target_rot90`` says how to turn it back (direction from the
raw's Orientation; ``rotation_guessed`` where the raw has none). A JPEG stored in sensor orientation
whose EXIF Orientation asks a viewer to turn it is flagged ``target_exif_orientation`` (read pixels
as stored, e.g. with isp_bench.images.read_image, which ignores EXIF Orientation).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

from isp_bench.datasets._common import exif_value, find_root, flag_exif_orientation, list_file, read_csv_rows, rel
from isp_bench.datasets.base import DatasetSource, LayoutReport, PairRecord, register_source

FILES = {"medium_raw": "medium_exposure.dng", "medium_jpeg": "medium_exposure.jpg",
         "short_raw": "short_exposure1.dng", "short_jpeg": "short_exposure.jpg"}
SCENES = 110
EXPECTED_CFA = "GRBG"
EXPECTED_WHITE = 1023.0  # 10-bit
_SCENE = re.compile(r"^(S7-ISP-Dataset-)?\d{8}_\d{6}$")


def official_split() -> dict[str, str]:
    """scene → 'val' | 'test' from CURL's published list (every other scene is 'train')."""
    return {r["scene"]: r["split"] for r in read_csv_rows(list_file("s7isp", "s7_curl_val_test_scenes.csv"))}


def _scene_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and _SCENE.match(p.name))


@register_source
class S7IspSource(DatasetSource):
    name = "s7isp"
    title = "S7-ISP (DeepISP): Samsung Galaxy S7 raw and camera JPEG, medium and short exposures"
    layout = ("S7-ISP-Dataset/<YYYYMMDD_HHMMSS>/{medium_exposure.dng, medium_exposure.jpg, "
              "short_exposure1.dng, short_exposure.jpg}")
    licence = "Research use (DeepISP authors' Kaggle release; no explicit redistribution grant)"
    licence_class = "research-only"
    redistributable = False
    url = "https://www.kaggle.com/datasets/knn165897/s7-isp-dataset"
    citation = "E. Schwartz, R. Giryes, A. M. Bronstein. DeepISP: Toward Learning an End-to-End Image Processing Pipeline. IEEE TIP 2019."
    notes = "Split: CURL's published 10 val + 10 test scenes, the other 90 train (the DeepISP split is not public)."

    def _root(self, root: Path) -> Path:
        return find_root(root, lambda p: bool(_scene_dirs(p)), "the S7-ISP dataset (YYYYMMDD_HHMMSS scene folders)",
                         names=("S7-ISP-Dataset",))

    def pairs(self, root: Path) -> Iterator[PairRecord]:
        base = self._root(root)  # paths stay relative to the folder given to the ingest
        split_of = official_split()
        for scene_dir in _scene_dirs(base):
            scene = scene_dir.name.removeprefix("S7-ISP-Dataset-")
            split = split_of.get(scene, "train")
            folder = rel(scene_dir, Path(root))
            target = f"{folder}/{FILES['medium_jpeg']}"
            medium_exp = exif_value(scene_dir / FILES["medium_raw"], "exposure_s")
            short_exp = exif_value(scene_dir / FILES["short_raw"], "exposure_s")
            common = dict(scene=scene, split=split, subset=None, target_device="Samsung Galaxy S7 camera JPEG",
                          target_path=target)
            yield PairRecord(pair_id=f"{scene}/well_lit", role="well_lit", input_path=f"{folder}/{FILES['medium_raw']}",
                             exposure_ratio=1.0, extra={"task": "mimic_isp"}, **common)
            ratio = medium_exp / short_exp if medium_exp and short_exp else None
            yield PairRecord(pair_id=f"{scene}/low_light", role="low_light", input_path=f"{folder}/{FILES['short_raw']}",
                             exposure_ratio=ratio, extra={"task": "low_light",
                                                          "short_jpeg": f"{folder}/{FILES['short_jpeg']}"},
                             **common)

    def finish_row(self, row: dict[str, Any], target_info: dict[str, Any] | None) -> dict[str, Any]:
        row = super().finish_row(row, target_info)
        if row.get("cfa") != EXPECTED_CFA:
            row["flags"].append("unexpected_cfa")
        if row.get("white_level") != EXPECTED_WHITE:
            row["flags"].append("unexpected_white_level")
        flag_exif_orientation(row, target_info)
        return row

    def check_layout(self, root: Path) -> LayoutReport:
        root = self._root(root)
        scenes = _scene_dirs(root)
        missing = [f"{s.name}/{f}" for s in scenes for f in FILES.values() if not (s / f).is_file()]
        on_disk = {s.name.removeprefix("S7-ISP-Dataset-") for s in scenes}
        missing += [f"{s}/ (a published val/test scene)" for s in sorted(set(official_split()) - on_disk)]
        return LayoutReport(self.name, str(root),
                            found={"scenes": len(scenes), "files": 4 * len(scenes) - sum("/" in m and "(" not in m for m in missing)},
                            expected={"scenes": SCENES, "files": 4 * SCENES}, missing=missing)
