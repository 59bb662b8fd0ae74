"""MIT-Adobe FiveK (Bychkovsky et al., CVPR 2011): 5000 raw photos and five experts' retouches.

Published layout: ``raw_photos/HQa*/photos/<basename>.dng`` (the raws, in folders of 700), the
experts' renditions exported as ``tiff16_{a,b,c,d,e}/<basename>.tif`` (16-bit ProPhoto RGB), and the
lists ``filesAdobe.txt`` / ``filesAdobeMIT.txt`` (which licence covers each image) and
``categories.txt``.

Pairs: one per (image, expert present), role ``expert_<x>``. Per-image licence class from the lists:
``fivek-adobe-mit`` (Adobe and MIT licences) or ``fivek-adobe`` (Adobe licence only).

Targets are ProPhoto RGB (ROMM, D50, gamma 1.8): every row carries the flag ``target_prophoto``;
converted with :func:`prophoto_to_srgb` (Bradford D50→D65, then the sRGB curve) wherever they are read as
targets (:meth:`FiveKSource.read_target`), never by treating the values as sRGB. Raw and expert sizes differ through the DNG DefaultCrop, the Orientation and
Lightroom crops: ``rotated_target``, ``default_crop_applied``, ``resized_target``, ``cropped_target``.

Camera per image: ``isp_bench/datasets/lists/fivek/camera_models.csv`` (yuukicammy, from the DNG EXIF); a file
whose EXIF model disagrees is flagged ``camera_model_differs_from_list``. Splits: CameraNet used the
Nikon D700 images with expert C and reports 500 train / 150 test, but FiveK holds only 590 D700
images, so its lists cannot be rebuilt; isp-bench ships a frozen D700 split
(``isp_bench/datasets/lists/fivek/d700_split.csv``: the 590 ids ordered by salted sha256, the first 150 test,
the other 440 train; see :func:`build_d700_split`). Other images: a salted-hash 90/10 train/test split.
``--model D700`` keeps only one camera model.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from isp_bench.colorimetry import BRADFORD_D50_TO_D65, PROPHOTO_TO_XYZ_D50, XYZ_TO_SRGB_LINDBLOOM, srgb_encode
from isp_bench.datasets._common import (classify_target_geometry, find_root, list_file, hash_order, hash_split,
                                        read_csv_rows, rel)
from isp_bench.datasets.base import DatasetSource, LayoutReport, PairRecord, register_source

EXPERTS = "abcde"
IMAGES = 5000
D700_SALT = "isp-bench/fivek/d700/v1"
D700_TEST = 150
SPLIT_SALT = "isp-bench/fivek/v1"
SPLIT_FRACTIONS = (("train", 0.9), ("test", 0.1))

def prophoto_to_srgb(image: np.ndarray, *, clip: bool = True) -> np.ndarray:
    """ProPhoto RGB (ROMM: D50 white, gamma 1.8 with a linear toe) → sRGB (IEC 61966-2-1, D65), float32.

    ``image``: H×W×3 uint16/uint8 (scaled by its dtype's maximum) or float in [0, 1].
    White maps to white, black to black; out-of-gamut colours are clipped when ``clip``.

    References: ISO 22028-2:2013 (ROMM RGB); IEC 61966-2-1:1999 (sRGB); Bradford adaptation (Lindbloom).
    """
    x = np.asarray(image)
    if x.dtype.kind in "ui":
        x = x.astype(np.float64) / np.iinfo(x.dtype).max
    x = np.clip(x.astype(np.float64)[..., :3], 0, 1)
    linear = np.where(x < 16 / 512, x / 16, x ** 1.8)
    m = XYZ_TO_SRGB_LINDBLOOM @ BRADFORD_D50_TO_D65 @ PROPHOTO_TO_XYZ_D50
    m = m / (m @ np.ones(3))[:, None]  # exact white → white (the published matrices are rounded)
    rgb = linear @ m.T
    if clip:
        rgb = np.clip(rgb, 0, 1)
    return srgb_encode(rgb).astype(np.float32)


@lru_cache(maxsize=1)
def camera_models() -> dict[str, tuple[str, str]]:
    """basename → (normalised make, normalised model) from the shipped list."""
    return {r["file_id"]: (r["normalized_make"], r["normalized_model"])
            for r in read_csv_rows(list_file("fivek", "camera_models.csv"))}


def build_d700_split() -> dict[str, str]:
    """The frozen D700 split rebuilt from its rule (the shipped CSV must equal this)."""
    ids = [i for i, (_, model) in camera_models().items() if model == "D700"]
    order = hash_order(ids, D700_SALT)
    return {i: ("test" if n < D700_TEST else "train") for n, i in enumerate(order)}


@lru_cache(maxsize=1)
def d700_split() -> dict[str, str]:
    return {r["file_id"]: r["split"] for r in read_csv_rows(list_file("fivek", "d700_split.csv"))}


def _read_list(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    return {Path(line.strip()).stem for line in path.read_text().splitlines() if line.strip()}


def _raws(root: Path) -> list[Path]:
    return sorted((root / "raw_photos").glob("HQa*/photos/*.dng"), key=lambda p: p.stem)


@register_source
class FiveKSource(DatasetSource):
    name = "fivek"
    title = "MIT-Adobe FiveK: 5000 raw photos with five experts' retouched renditions"
    layout = ("raw_photos/HQa*/photos/<basename>.dng, tiff16_{a..e}/<basename>.tif, filesAdobe.txt, "
              "filesAdobeMIT.txt, categories.txt")
    licence = ("Adobe licence (research use) for all images; the images in filesAdobeMIT.txt also under the MIT "
               "licence")
    licence_class = "research-only"
    redistributable = True  # research-only: the card carries the licences and the Hub gates access
    url = "https://data.csail.mit.edu/graphics/fivek/"
    citation = "V. Bychkovsky, S. Paris, E. Chan, F. Durand. Learning Photographic Global Tonal Adjustment with a Database of Input/Output Image Pairs. CVPR 2011."
    options_help = {"model": "keep only one camera model (e.g. 'D700', CameraNet's subset)",
                    "experts": "experts whose renditions are targets (default: every tiff16_<x> folder present)"}
    notes = "D700: frozen split of our own (150 test / 440 train); CameraNet reports 500/150 but only 590 exist."

    def _root(self, root: Path) -> Path:
        return find_root(root, lambda p: (p / "raw_photos").is_dir(), "MIT-Adobe FiveK (raw_photos/HQa*/photos)",
                         names=("fivek_dataset",))

    def pairs(self, root: Path) -> Iterator[PairRecord]:
        base = self._root(root)  # paths stay relative to the folder given to the ingest
        experts = [x for x in (self.options.get("experts") or EXPERTS) if (base / f"tiff16_{x}").is_dir()]
        adobe, adobe_mit = _read_list(base / "filesAdobe.txt"), _read_list(base / "filesAdobeMIT.txt")
        categories = {}
        if (base / "categories.txt").is_file():
            for line in (base / "categories.txt").read_text().splitlines():
                parts = line.replace(",", " ").split(maxsplit=1)
                if parts:
                    categories[Path(parts[0]).stem] = parts[1].strip() if len(parts) > 1 else ""
        cams, d700 = camera_models(), d700_split()
        wanted = self.options.get("model")
        for raw in _raws(base):
            stem = raw.stem
            make, model = cams.get(stem, (None, None))
            if wanted and (model is None or str(wanted).lower() not in f"{make} {model}".lower()):
                continue
            split = d700.get(stem) or hash_split(stem, SPLIT_SALT, SPLIT_FRACTIONS)
            licence = "fivek-adobe-mit" if stem in adobe_mit else "fivek-adobe" if stem in adobe else None
            flags = ["target_prophoto"]
            if licence is None:
                flags.append("licence_unlisted")
            extra = {"camera_list": f"{make} {model}" if model else None, "categories": categories.get(stem),
                     "target_colorspace": "ProPhoto RGB (ROMM, D50, gamma 1.8)"}
            for x in experts:
                yield PairRecord(pair_id=f"{stem}/expert_{x}", scene=stem, split=split, role=f"expert_{x}",
                                 input_path=rel(raw, root), target_path=rel(base / f"tiff16_{x}" / f"{stem}.tif", root),
                                 subset=f"{make} {model}" if model else None, target_device=f"FiveK expert {x.upper()}",
                                 exposure_ratio=1.0, flags=list(flags), licence_class=licence,
                                 fill={"make": make, "model": model}, extra=extra)

    def read_target(self, path: Path) -> np.ndarray:
        """An expert's rendition in sRGB (16 bits): the ProPhoto RGB TIFF through :func:`prophoto_to_srgb`."""
        from isp_bench.images import read_image

        return np.round(prophoto_to_srgb(read_image(path)) * 65535.0).astype(np.uint16)

    def finish_row(self, row: dict[str, Any], target_info: dict[str, Any] | None) -> dict[str, Any]:
        row = classify_target_geometry(row, target_info)
        listed = camera_models().get(row["scene"])
        if listed and "model" not in row["filled_from_dataset"] and row.get("model"):
            if listed[1].lower().replace(" ", "") not in row["model"].lower().replace(" ", ""):
                row["flags"].append("camera_model_differs_from_list")
        return row

    def check_layout(self, root: Path) -> LayoutReport:
        root = self._root(root)
        raws = {p.stem for p in _raws(root)}
        found = {"raw photos": len(raws)}
        expected = {"raw photos": IMAGES}
        missing = [f"raw_photos/HQa*/photos/{b}.dng" for b in sorted(set(camera_models()) - raws)][:100]
        for x in EXPERTS:
            folder = root / f"tiff16_{x}"
            if folder.is_dir():
                have = {p.stem for p in folder.glob("*.tif")}
                found[f"expert {x}"] = len(have & raws)
                expected[f"expert {x}"] = len(raws)
                missing += [f"tiff16_{x}/{b}.tif" for b in sorted(raws - have)][:100]
        # the lists first: a missing one changes every row (licence, category), a missing photo only its own
        missing = [name for name in ("filesAdobe.txt", "filesAdobeMIT.txt", "categories.txt")
                   if not (root / name).is_file()] + missing
        return LayoutReport(self.name, str(root), found=found, expected=expected, missing=missing)
