"""Miniature copies of each public dataset's published layout, in the real file formats.

Raw containers are DNGs (``write_dng``; LibRaw identifies a raw by content, so a DNG stands in for an
ARW/RAF in layout tests; the Fuji stand-in is a real 6×6 X-Trans CFA DNG), 16-bit PNGs via
``write_png`` and JPEGs with EXIF via ``write_jpeg``. Each builder plants its dataset's traps.
Images are tiny (>= 32×32, LibRaw's minimum) so every builder runs in well under a second.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np
import tifffile

from isp_bench.images import write_jpeg, write_png
from isp_bench.raw import write_dng
from isp_bench.raw.dng import TAG, _rationals

_CM = np.array([[0.6, 0.3, 0.1], [0.25, 0.7, 0.05], [0.05, 0.1, 0.85]])


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def dng(path: Path, *, h: int = 32, w: int = 48, cfa: str = "RGGB", black: int = 64, white: int = 1023,
        make: str = "Samsung", model: str = "SM-G930F", orientation: int = 1, exposure_s: float = 1 / 30,
        iso: float = 100, fnumber: float = 1.7, default_crop=None, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    mosaic = _rng(seed).integers(black + 10, white - 10, (h, w)).astype(np.uint16)
    return write_dng(path, mosaic, cfa=cfa, black_level=black, white_level=white, wb_as_shot=(2.0, 1.0, 1.6),
                     color_matrix=_CM, iso=iso, exposure_s=exposure_s, fnumber=fnumber, make=make, model=model,
                     orientation=orientation, default_crop=default_crop, datetime=dt.datetime(2017, 1, 2, 3, 4, 5))


XTRANS = ("GGRGGB", "GGBGGR", "BRGRBG", "GGBGGR", "GGRGGB", "RBGBRG")


def xtrans_dng(path: Path, *, h: int = 36, w: int = 48, black: int = 1024, white: int = 16383,
               exposure_s: float = 0.1, iso: float = 1000, fnumber: float = 2.8, seed: int = 0) -> Path:
    """A DNG with a 6×6 X-Trans CFA (what LibRaw reports for a Fujifilm X-T2 RAF)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mosaic = _rng(seed).integers(black + 10, white - 10, (h, w)).astype(np.uint16)
    pattern = tuple("RGB".index(c) for row in XTRANS for c in row)
    tags = [(TAG["Make"], "s", 0, "FUJIFILM", True), (TAG["Model"], "s", 0, "X-T2", True),
            (TAG["Orientation"], "H", 1, 1, True), (TAG["CFARepeatPatternDim"], "H", 2, (6, 6), True),
            (TAG["CFAPattern"], "B", 36, pattern, True),
            (TAG["ExposureTime"], "2I", 1, _rationals([exposure_s], False), True),
            (TAG["FNumber"], "2I", 1, _rationals([fnumber], False), True),
            (TAG["ISOSpeedRatings"], "H", 1, int(iso), True), (TAG["DNGVersion"], "B", 4, (1, 4, 0, 0), True),
            (TAG["DNGBackwardVersion"], "B", 4, (1, 3, 0, 0), True),
            (TAG["UniqueCameraModel"], "s", 0, "FUJIFILM X-T2", True), (TAG["CFAPlaneColor"], "B", 3, (0, 1, 2), True),
            (TAG["CFALayout"], "H", 1, 1, True), (TAG["BlackLevel"], "I", 1, black, True),
            (TAG["WhiteLevel"], "I", 1, white, True),
            (TAG["ColorMatrix1"], "2i", 9, _rationals(np.linalg.inv(_CM), True), True),
            (TAG["AsShotNeutral"], "2I", 3, _rationals([0.5, 1.0, 0.6], False), True),
            (TAG["CalibrationIlluminant1"], "H", 1, 21, True)]
    tifffile.imwrite(path, mosaic, photometric=tifffile.PHOTOMETRIC.CFA, subfiletype=0, compression=None,
                     metadata=None, extratags=sorted(tags, key=lambda t: t[0]))
    return path


def jpeg(path: Path, h: int, w: int, *, orientation: int | None = None, seed: int = 0, model: str = "SM-G930F") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = _rng(seed).integers(0, 255, (h, w, 3)).astype(np.uint8)
    return write_jpeg(path, image, quality=90, exif={"Make": "Samsung", "Model": model, "Orientation": orientation})


def png16(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_png(path, np.ascontiguousarray(image.astype(np.uint16)))


# --------------------------------------------------------------------------------------------- s7isp
with open(Path(__file__).resolve().parents[1] / "isp_bench/datasets/lists/s7isp/s7_curl_val_test_scenes.csv") as _fh:
    S7_SPLITS = {r["scene"]: r["split"] for r in csv.DictReader(_fh)}
S7_VAL = next(s for s, v in S7_SPLITS.items() if v == "val")
S7_TEST = next(s for s, v in S7_SPLITS.items() if v == "test")
S7_TRAIN = "20170101_120000"


def build_s7isp(root: Path) -> Path:
    """Three scenes (one per split). Traps: short_exposure1.dng; S7_TEST's JPEG is stored rotated 90°
    against the raw (raw Orientation 6); S7_VAL's JPEG is in sensor orientation with EXIF Orientation 6."""
    base = root / "S7-ISP-Dataset"
    for n, scene in enumerate((S7_VAL, S7_TEST, S7_TRAIN)):
        d = base / scene
        orientation = 6 if scene == S7_TEST else 1
        dng(d / "medium_exposure.dng", cfa="GRBG", black=0, white=1023, exposure_s=1 / 30, orientation=orientation, seed=n)
        dng(d / "short_exposure1.dng", cfa="GRBG", black=0, white=1023, exposure_s=1 / 120, orientation=orientation,
            seed=10 + n)
        h, w = (48, 32) if scene == S7_TEST else (32, 48)
        jpeg(d / "medium_exposure.jpg", h, w, orientation=6 if scene == S7_VAL else 1, seed=n)
        jpeg(d / "short_exposure.jpg", h, w, seed=20 + n)
    return root


# ----------------------------------------------------------------------------------------------- sid
SID_FILES = {
    # (camera, short stem, long stem): a train pair, a misaligned test pair (burst 00 and 01), a val pair
    ("Sony", "00001_00_0.04s", "00001_00_10s"),
    ("Sony", "10034_00_0.04s", "10034_00_10s"),
    ("Sony", "10034_01_0.1s", "10034_00_10s"),
    ("Sony", "20005_00_0.04s", "20005_00_10s"),
    ("Fuji", "10172_00_0.033s", "10172_00_10s"),
}


def build_sid(root: Path) -> Path:
    """A few pairs the official lists name (Sony Bayer DNGs named .ARW, Fuji X-Trans DNGs named .RAF)."""
    for n, (camera, short, long_) in enumerate(sorted(SID_FILES)):
        ext = "ARW" if camera == "Sony" else "RAF"
        exp = float(short.split("_")[2][:-1])
        for stem, e in ((short, exp), (long_, 10.0)):
            path = root / camera / ("short" if stem == short else "long") / f"{stem}.{ext}"
            if path.exists():
                continue
            if camera == "Sony":
                dng(path, cfa="RGGB", black=512, white=16383, make="Sony", model="ILCE-7S", exposure_s=e, iso=200,
                    fnumber=9, seed=n)
            else:
                xtrans_dng(path, exposure_s=e, iso=640, fnumber=7.1, seed=n)
    return root


# ----------------------------------------------------------------------------------------------- msr
def _smooth_rgb(h: int, w: int, seed: int) -> np.ndarray:
    rng = _rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    chans = []
    for c in range(3):
        a, b, f = rng.uniform(0.5, 3, 3)
        chans.append(0.5 + 0.4 * np.sin(a * 6 * x + c) * np.cos(b * 6 * y + f) + 0.05 * rng.standard_normal((h, w)))
    return (np.clip(np.dstack(chans), 0, 1) * 60000).astype(np.uint16)


def _mosaic_from(rgb: np.ndarray, cfa: str) -> np.ndarray:
    out = np.zeros(rgb.shape[:2], np.uint16)
    for pos, (dy, dx) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        out[dy::2, dx::2] = rgb[dy::2, dx::2, "RGB".index(cfa[pos])]
    return out


MSR_PHASES = {("without_noise", "panasonic"): "GRBG", ("with_noise", "canon"): "BGGR"}


def build_msr(root: Path) -> Path:
    """Two camera/noise folders whose mosaics use different phases (GRBG, BGGR with noise); ground
    truth 16-bit RGBA; split lists in the camera folder; id 4 is in no list."""
    for (noise, cam), cfa in MSR_PHASES.items():
        folder = root / f"Dataset_LINEAR_{noise}" / f"bayer_{cam}"
        for i in range(1, 5):
            rgb = _smooth_rgb(32, 44, seed=i)
            alpha = np.full(rgb.shape[:2] + (1,), 65535, np.uint16)
            png16(folder / "groundtruth" / f"{i}.png", np.concatenate([rgb, alpha], axis=2))
            mosaic = _mosaic_from(rgb, cfa).astype(np.int64)
            if noise == "with_noise":
                mosaic = np.clip(mosaic + _rng(i).normal(0, 800, mosaic.shape), 0, 65535)
            png16(folder / "input" / f"{i}.png", mosaic)
        (folder / "train.txt").write_text("1\n")
        (folder / "validation.txt").write_text("2\n")
        (folder / "test.txt").write_text("3\n")
    return root


# -------------------------------------------------------------------------------------------- zurich
def build_zurich(root: Path) -> Path:
    """train 0,1 and test 0,1 patches (72×72 10-bit PNG and a Canon JPEG of the same size, as the published
    448×448 pairs), one full-resolution frame; test/1 holds values above 1023 (flagged)."""
    for split in ("train", "test"):
        for i in range(2):
            raw = _rng(i).integers(0, 1024, (72, 72))
            if split == "test" and i == 1:
                raw[0, 0] = 2000
            png16(root / split / "huawei_raw" / f"{i}.png", raw)
            jpeg(root / split / "canon" / f"{i}.jpg", 72, 72, seed=i, model="Canon EOS 5D Mark IV")
    png16(root / "test" / "huawei_full_resolution" / "0.png", _rng(9).integers(0, 1024, (40, 48)))
    return root


# ------------------------------------------------------------------------------------------ crispnet
def build_crispnet(root: Path) -> Path:
    """MetaISP layout under datasets/: monitor train (2 patches, iPhone + Samsung renditions), val (1 patch),
    a full val frame; real test patch whose data lies far below the stated black level 528."""
    base = root / "datasets"

    def raw_png(path: Path, lo: int, seed: int) -> None:
        png16(path, _rng(seed).integers(lo, 4000, (32, 32)))

    meta_rows = {"train": [("sceneA_0.png", 2.0, 1.0, 1.5, 0.01, 100), ("sceneA_1.png", 2.1, 1.0, 1.4, 0.02, 200)],
                 "val": [("sceneB_0.png", 1.8, 1.0, 1.7, 0.005, 50)]}
    for split, rows in meta_rows.items():
        for n, (name, *_rest) in enumerate(rows):
            raw_png(base / "monitor/iphone/raw" / split / name, 530, seed=n)
            png16(base / "monitor/iphone/rgb" / split / name, _rng(n).integers(0, 255, (32, 32, 3)))
            if split == "train":
                png16(base / "monitor/samsung/rgb" / split / name, _rng(n + 5).integers(0, 255, (32, 32, 3)))
        for device in ("iphone", "samsung"):
            path = base / "monitor/meta" / device / f"meta_{split}_patch.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["name", "r", "g", "b", "exposure", "iso"])
                w.writerows(rows)
    raw_png(base / "monitor/iphone/full/raw/val/sceneB.png", 530, seed=7)
    png16(base / "monitor/iphone/full/rgb/val/sceneB.png", _rng(7).integers(0, 255, (16, 16, 3)))  # half resolution
    raw_png(base / "real/iphone/raw/test/sceneC_3.png", 0, seed=8)  # black level trap
    png16(base / "real/iphone/rgb/test/sceneC_3.png", _rng(8).integers(0, 255, (32, 32, 3)))
    return root


# --------------------------------------------------------------------------------------------- pairs
def build_pairs(root: Path) -> Path:
    """a/IMG_0001 (JPEG stored rotated, raw Orientation 6), b/IMG_0002 (JPEG in sensor orientation with
    EXIF Orientation 6, upper-case .JPG; a Model that repeats the Make), IMG_0003 (raw without JPEG)."""
    dng(root / "a" / "IMG_0001.dng", make="Apple", model="iPhone 12", orientation=6, seed=1)
    jpeg(root / "a" / "IMG_0001.jpg", 48, 32, seed=1)
    dng(root / "b" / "IMG_0002.dng", make="Canon", model="Canon EOS R5", seed=2)
    jpeg(root / "b" / "IMG_0002.JPG", 32, 48, orientation=6, seed=2)
    dng(root / "IMG_0003.dng", make="Apple", model="iPhone 12", seed=3)
    return root


# ------------------------------------------------------------------------------------------- hdrplus
HDRPLUS_6P, HDRPLUS_5 = "0006_20160721_163256_525", "0039_20141012_174802_512"


def build_hdrplus(root: Path) -> Path:
    """Two bursts (Nexus 6P and Nexus 5). Traps: merged.dng has other black/white levels than the payload
    frames; the 6P final.jpg is cropped, the Nexus 5 one stored rotated (merged Orientation 6); an older
    results folder that must not be the default target."""
    for n, (burst, model) in enumerate(((HDRPLUS_6P, "Nexus 6P"), (HDRPLUS_5, "Nexus 5"))):
        orientation = 6 if model == "Nexus 5" else 1
        for k in range(3):
            dng(root / "bursts" / burst / f"payload_N{k:03d}.dng", black=64, white=1023, make="LGE", model=model,
                orientation=orientation, seed=10 * n + k)
        res = root / "results_20171023" / burst
        dng(res / "merged.dng", black=1024, white=16383, make="LGE", model=model, orientation=orientation, seed=99 + n)
        jpeg(res / "final.jpg", *((30, 40) if model == "Nexus 6P" else (48, 32)), seed=n, model=model)
        (res / "reference_frame.txt").write_text("1\n")
    old = root / "results_20161014" / HDRPLUS_6P
    dng(old / "merged.dng", black=1024, white=16383, make="LGE", model="Nexus 6P", seed=7)
    jpeg(old / "final.jpg", 32, 48, seed=7)
    (old / "reference_frame.txt").write_text("0\n")
    return root


# --------------------------------------------------------------------------------------------- fivek
FIVEK_D700 = "a4333-_DGW0255"          # Nikon D700 in the shipped camera list
FIVEK_OTHER = "a4904-Duggan_081024_2201"  # Canon EOS 5D


def build_fivek(root: Path) -> Path:
    """Two images. D700: DefaultCrop inside the sensor, Orientation 6, expert C TIFF = the crop turned 90°;
    Canon: expert C cropped by Lightroom (other aspect), expert A full size; MIT list holds only the D700."""
    dng(root / "raw_photos/HQa4201to5000/photos" / f"{FIVEK_D700}.dng", h=40, w=56, make="NIKON CORPORATION",
        model="NIKON D700", orientation=6, default_crop=(4, 4, 32, 48), seed=1)
    dng(root / "raw_photos/HQa4201to5000/photos" / f"{FIVEK_OTHER}.dng", h=32, w=48, make="Canon",
        model="Canon EOS 5D", seed=2)
    tif = lambda p, h, w: (p.parent.mkdir(parents=True, exist_ok=True),  # noqa: E731
                           tifffile.imwrite(p, _rng(h * w).integers(0, 65535, (h, w, 3)).astype(np.uint16),
                                            photometric="rgb"))
    tif(root / "tiff16_c" / f"{FIVEK_D700}.tif", 48, 32)
    tif(root / "tiff16_c" / f"{FIVEK_OTHER}.tif", 30, 30)
    tif(root / "tiff16_a" / f"{FIVEK_OTHER}.tif", 32, 48)
    (root / "filesAdobe.txt").write_text(f"{FIVEK_D700}\n{FIVEK_OTHER}\n")
    (root / "filesAdobeMIT.txt").write_text(f"{FIVEK_D700}\n")
    (root / "categories.txt").write_text(f"{FIVEK_D700} outdoor,nature\n{FIVEK_OTHER} indoor,people\n")
    return root


BUILDERS = {"s7isp": build_s7isp, "sid": build_sid, "msr": build_msr, "zurich": build_zurich,
            "crispnet": build_crispnet, "pairs": build_pairs, "hdrplus": build_hdrplus, "fivek": build_fivek}
