"""Zurich RAW-to-RGB (PyNET, Ignatov et al., CVPRW 2020): Huawei P20 raw patches, Canon 5D Mark IV photos.

Published layout: ``{train,test}/huawei_raw/<i>.png`` (10-bit Bayer data in 16-bit grey PNGs) and
``{train,test}/canon/<i>.jpg``; optionally ``test/huawei_full_resolution/<i>.png`` (full frames with
no target: role ``full_resolution``). Splits are the published folders (no validation set).

The two images of a pair come from two cameras and are only roughly aligned: every row carries the
flag ``not_pixel_aligned`` (pixel-wise metrics are approximate by construction). Black level 0, white
level 1023 (10-bit) and the RGGB phase come from the authors' code (PyNET ``extract_bayer_channels``),
not from the files: they are named in ``filled_from_dataset``, and a patch whose values exceed 1023
is flagged ``exceeds_10_bit``. Note the authors normalise by 4·255 = 1020, not 1023: a model
reproducing PyNET's numbers must do the same (an explicit option, not the library default).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from isp_bench.datasets._common import find_root, read_png_mosaic, rel, sorted_pngs
from isp_bench.datasets.base import DatasetSource, LayoutReport, PairRecord, register_source
from isp_bench.raw import RawCapture

SPLITS = ("train", "test")
EXPECTED = {"train": 46839, "test": 1204}  # TRAIN_SIZE / TEST_SIZE in the authors' train_model.py (ids 0..N-1)
WHITE_LEVEL = 1023.0
CFA = "RGGB"


def _is_root(p: Path) -> bool:
    return any((p / s / "huawei_raw").is_dir() for s in SPLITS)


@register_source
class ZurichSource(DatasetSource):
    name = "zurich"
    title = "Zurich RAW-to-RGB (PyNET): Huawei P20 raw patches → Canon 5D Mark IV sRGB"
    layout = "{train,test}/huawei_raw/<i>.png, {train,test}/canon/<i>.jpg[, test/huawei_full_resolution/<i>.png]"
    licence = "Research use only (ETH Zurich, per the PyNET project page); redistribution not granted"
    licence_class = "research-only"
    redistributable = False
    url = "https://people.ee.ethz.ch/~ihnatova/pynet.html#dataset"
    citation = "A. Ignatov, L. Van Gool, R. Timofte. Replacing Mobile Camera ISP with a Single Deep Learning Model. CVPRW 2020."
    input_kind = "mosaic_image"
    notes = "Two cameras: every pair is flagged not_pixel_aligned."

    def _root(self, root: Path) -> Path:
        return find_root(root, _is_root, "the Zurich RAW-to-RGB dataset ({train,test}/huawei_raw)",
                         names=("Zurich-RAW-to-DSLR-Dataset", "zurich"))

    def pairs(self, root: Path) -> Iterator[PairRecord]:
        base = self._root(root)  # paths stay relative to the folder given to the ingest
        common = dict(fill={"make": "HUAWEI", "model": "P20"}, exposure_ratio=1.0)
        for split in SPLITS:
            for png in sorted_pngs(base / split / "huawei_raw"):
                jpg = base / split / "canon" / f"{png.stem}.jpg"
                yield PairRecord(pair_id=f"{split}/{png.stem}", scene=f"{split}/{png.stem}", split=split,
                                 role="raw_to_rgb", input_path=rel(png, root), target_path=rel(jpg, root),
                                 target_device="Canon EOS 5D Mark IV", flags=["not_pixel_aligned"], **common)
        for png in sorted_pngs(base / "test" / "huawei_full_resolution"):
            yield PairRecord(pair_id=f"full_resolution/{png.stem}", scene=f"full_resolution/{png.stem}", split="test",
                             role="full_resolution", input_path=rel(png, root), flags=["no_target"], **common)

    def read_input(self, path: Path) -> RawCapture:
        mosaic = read_png_mosaic(Path(path))
        flags = ["exceeds_10_bit"] if int(mosaic.max()) > WHITE_LEVEL else []
        return RawCapture(mosaic=mosaic, cfa=CFA, black_level=(0.0, 0.0, 0.0, 0.0), white_level=WHITE_LEVEL,
                          container="PNG", extra={"flags": flags,
                                                  "filled_from_dataset": ["black_level", "cfa", "white_level"]})

    def finish_row(self, row, target_info):
        # the target is another camera's photo at 2× the mosaic's size: no shape check applies
        if target_info is not None:
            row["target_height"], row["target_width"], row["target_rot90"] = target_info["height"], target_info["width"], 0
        return row

    def check_layout(self, root: Path) -> LayoutReport:
        root = self._root(root)
        found, missing = {}, []
        for split in SPLITS:
            raws = sorted_pngs(root / split / "huawei_raw")
            found[f"{split} raw"] = len(raws)
            lacking = [f"{split}/canon/{p.stem}.jpg" for p in raws if not (root / split / "canon" / f"{p.stem}.jpg").is_file()]
            found[f"{split} pairs"] = len(raws) - len(lacking)
            missing += lacking
        return LayoutReport(self.name, str(root), found=found,
                            expected={f"{s} pairs": n for s, n in EXPECTED.items()}, missing=missing)
