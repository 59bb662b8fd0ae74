"""CRISPnet data through its authors' MetaISP release (Souza & Heidrich): iPhone XR raw, three phones' renditions.

CRISPnet's own dataset is unreleased; MetaISP, by the same authors, releases the same iPhone XR
monitor and real-world captures. Published layout (as the authors' loader reads it), for each
subset ``monitor`` and ``real``:

- ``<subset>/iphone/raw/{train,val,test}/<scene>_<k>.png``: 16-bit single-channel Bayer patches
  (``k`` = 0..35, a 6×6 grid of 448-pixel patches);
- ``<subset>/{iphone,samsung,pixel}/rgb/{train,val,test}/<scene>_<k>.png``: the iPhone XR, Samsung
  Galaxy S22 and Google Pixel 6 Pro renditions of the same patch;
- ``<subset>/iphone/full/raw/{val,test}/`` and ``<subset>/{device}/full/rgb/{val,test}/``: full frames;
- ``<subset>/meta/{iphone,samsung,pixel}/meta_{train,val,test}_patch.csv`` and ``meta_{val,test}.csv``:
  file, r, g, b white-balance gains, exposure, ISO (by column position).

One row per (raw, rendition): ``subset`` is ``monitor``/``real``, ``target_device`` the phone whose
rendition is the target, role ``patch`` or ``full``. White balance, exposure and ISO come from the
iPhone meta CSV (named in ``filled_from_dataset``); the target phone's own gains go to ``extra``.

Black level 528 and white level 4095 (RGGB) come from the authors' code, not the files. The black
level is checked against every file: ``extra.input.black_check`` holds the minimum and 0.1 %
quantile, and ``black_level_suspect`` flags a file whose 0.1 % quantile lies more than
:data:`BLACK_TOLERANCE` below 528 (a true black of 528 leaves only read noise below it).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from isp_bench.datasets._common import find_root, read_png_mosaic, rel, sorted_pngs
from isp_bench.datasets.base import DatasetSource, LayoutReport, PairRecord, register_source
from isp_bench.raw import RawCapture

SUBSETS = ("monitor", "real")
SPLITS = ("train", "val", "test")
FULL_SPLITS = ("val", "test")
DEVICES = {"iphone": "Apple iPhone XR", "samsung": "Samsung Galaxy S22", "pixel": "Google Pixel 6 Pro"}
BLACK_LEVEL = 528.0
WHITE_LEVEL = 4095.0
CFA = "RGGB"
BLACK_TOLERANCE = 32.0


def _is_root(p: Path) -> bool:
    return any((p / s / "iphone" / "raw").is_dir() or (p / s / "iphone" / "full" / "raw").is_dir() for s in SUBSETS)


def _read_meta(path: Path) -> dict[str, dict[str, float]]:
    """file stem → {r, g, b, exposure, iso} from a MetaISP meta CSV (columns by position, header skipped)."""
    if not path.is_file():
        return {}
    out = {}
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    for row in rows[1:]:
        if len(row) < 6:
            continue
        try:
            r, g, b, exposure, iso = (float(v) for v in row[1:6])
        except ValueError:
            continue
        out[Path(row[0].strip()).stem] = {"r": r, "g": g, "b": b, "exposure": exposure, "iso": iso}
    return out


@register_source
class CrispnetSource(DatasetSource):
    name = "crispnet"
    title = "CRISPnet / MetaISP captures: iPhone XR raw with iPhone XR, Galaxy S22 and Pixel 6 Pro renditions"
    layout = ("<monitor|real>/iphone/raw/{train,val,test}/<scene>_<k>.png, <monitor|real>/{iphone,samsung,pixel}/"
              "rgb/{split}/, <monitor|real>/iphone/full/raw/{val,test}/, <monitor|real>/meta/<device>/meta_*.csv")
    licence = "Research use (MetaISP release by the CRISPnet authors, KAUST); redistribution not granted"
    licence_class = "research-only"
    redistributable = False
    url = "https://github.com/vccimaging/MetaISP (dataset link in its README)"
    citation = ("M. Souza, W. Heidrich. CRISPnet: Color Rendition ISP Net. arXiv 2022; "
                "MetaISP: Efficient RAW-to-sRGB Mappings with Merged Color Controls, VMV 2023.")
    input_kind = "mosaic_image"
    notes = "Black level 528 / white 4095 from the authors' code, checked per file (black_level_suspect)."

    def _root(self, root: Path) -> Path:
        return find_root(root, _is_root, "the MetaISP dataset (monitor/ or real/ with iphone/raw)", names=("datasets",))

    def pairs(self, root: Path) -> Iterator[PairRecord]:
        top = self._root(root)  # paths stay relative to the folder given to the ingest
        for subset in SUBSETS:
            base = top / subset
            for full in (False, True):
                devices = [d for d in DEVICES if (base / d / ("full/rgb" if full else "rgb")).is_dir()]
                for split in FULL_SPLITS if full else SPLITS:
                    raw_dir = base / "iphone" / ("full/raw" if full else "raw") / split
                    meta_name = f"meta_{split}.csv" if full else f"meta_{split}_patch.csv"
                    meta = {d: _read_meta(base / "meta" / d / meta_name) for d in DEVICES}
                    for png in sorted_pngs(raw_dir):
                        yield from self._records(root, subset, split, full, png, devices, meta)

    def _records(self, root, subset, split, full, png, devices, meta) -> Iterator[PairRecord]:
        stem = png.stem
        scene = stem if full else stem.rsplit("_", 1)[0]
        own = meta["iphone"].get(stem)
        fill: dict[str, Any] = {"make": "Apple", "model": "iPhone XR"}
        flags = []
        if own:
            fill.update(wb_as_shot=[own["r"] / own["g"], 1.0, own["b"] / own["g"]], exposure_s=own["exposure"],
                        iso=own["iso"])
        else:
            flags.append("no_metadata")
        for device in devices:
            target = png.parents[4 if full else 3] / device / ("full/rgb" if full else "rgb") / split / png.name
            k = stem.rsplit("_", 1)[-1]
            extra: dict[str, Any] = {"patch": int(k) if not full and k.isdigit() else None}
            dev_meta = meta[device].get(stem)
            if dev_meta:
                extra["target_wb"] = [dev_meta["r"], dev_meta["g"], dev_meta["b"]]
            yield PairRecord(
                pair_id=f"{subset}/{'full/' if full else ''}{split}/{stem}/{device}", scene=f"{subset}/{scene}",
                split=split, role="full" if full else "patch", input_path=rel(png, root), target_path=rel(target, root),
                subset=subset, target_device=DEVICES[device], exposure_ratio=1.0, flags=list(flags), fill=fill,
                extra=extra)

    def read_input(self, path: Path) -> RawCapture:
        mosaic = read_png_mosaic(Path(path))
        q = float(np.quantile(mosaic, 0.001))
        check = {"min": int(mosaic.min()), "q0_001": q, "black_level": BLACK_LEVEL}
        flags = ["black_level_suspect"] if q < BLACK_LEVEL - BLACK_TOLERANCE or int(mosaic.max()) > WHITE_LEVEL else []
        return RawCapture(mosaic=mosaic, cfa=CFA, black_level=(BLACK_LEVEL,) * 4, white_level=WHITE_LEVEL,
                          container="PNG", extra={"black_check": check, "flags": flags,
                                                  "filled_from_dataset": ["black_level", "cfa", "white_level"]})

    def finish_row(self, row: dict[str, Any], target_info: dict[str, Any] | None) -> dict[str, Any]:
        row = super().finish_row(row, target_info)
        if target_info and (target_info["height"], target_info["width"]) == (row["height"] // 2, row["width"] // 2):
            row["flags"].remove("size_mismatch")  # a rendition at the packed (half) resolution
            row["flags"].append("target_half_resolution")
        return row

    def check_layout(self, root: Path) -> LayoutReport:
        root = self._root(root)
        found, missing = {}, []
        for subset in SUBSETS:
            base = root / subset
            if not base.is_dir():
                continue
            for split in SPLITS:
                raws = sorted_pngs(base / "iphone" / "raw" / split)
                found[f"{subset} {split} raw"] = len(raws)
                for device in DEVICES:
                    folder = base / device / "rgb" / split
                    have = sum((folder / p.name).is_file() for p in raws)
                    found[f"{subset} {split} {device}"] = have
                    missing += [rel(folder / p.name, root) for p in raws if not (folder / p.name).is_file()][:50]
                if not (base / "meta" / "iphone" / f"meta_{split}_patch.csv").is_file():
                    missing.append(f"{subset}/meta/iphone/meta_{split}_patch.csv")
        expected = {k.replace(" raw", f" {d}"): v for k, v in found.items() if k.endswith(" raw") for d in DEVICES}
        return LayoutReport(self.name, str(root), found=found, expected=expected, missing=missing)
