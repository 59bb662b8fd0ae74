"""SID, Learning to See in the Dark (Chen et al., CVPR 2018): Sony α7S II (Bayer) and Fujifilm X-T2 (X-Trans).

Published layout: ``Sony/{short,long}/*.ARW`` and ``Fuji/{short,long}/*.RAF``. A file name is
``<split digit><scene:4>_<burst:2>_<exposure>s``: the first digit says the split (0 train, 1 test,
2 validation). The official split is the authors' lists (``isp_bench/datasets/lists/sid/*_list.txt``, one
row per pair: short path, long path, ``ISO<n>``, ``F<x>``), shipped in the package; several short
frames share one long (ground-truth) frame.

Traps handled:

- exposure ratio = long / short exposure from the file names, capped at 300 as the authors' code does;
- scenes 10034, 10045 and 10172 are flagged ``misaligned`` (the authors' README: misaligned ground
  truth, to be left out of quantitative results). The note does not name the camera; 10172 also
  appears in the Fuji test list, where it is flagged ``misaligned_ambiguous``;
- the authors' test protocol evaluates only burst 00 of each test scene (their test scripts glob
  ``%05d_00*``): the ``protocol_split`` column is ``test`` for those rows, empty for the other test
  bursts, and equal to ``split`` for train and val; filter on it to reproduce the paper's numbers;
- Fuji rows have cfa ``XTRANS``. Every model registered in isp_bench.models takes ``packed_rggb`` or
  ``bilinear_rgb`` input, both of which need a 2×2 Bayer mosaic, so none of them can take Fuji rows;
  SID's own Fuji network (6×6 X-Trans packed to 9 channels) is not in the registry.
- the target is the long exposure *raw* file (the authors render it with LibRaw: camera white balance,
  no auto-brightness, 16-bit output); it is inspected as a raw file at ingest, and training and scoring
  read it rendered so (:meth:`SidSource.read_target`, in sensor orientation).

``--lists-only`` builds the manifest from the shipped lists alone (no image files): ISO and F-number
from the list, exposure from the file name and the camera from the paper, each named in
``filled_from_dataset``; files are not hashed (``input_sha256 == ""``, flag ``not_hashed``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

from isp_bench.datasets._common import find_root, list_file
from isp_bench.datasets.base import DatasetSource, LayoutReport, PairRecord, register_source
from isp_bench.errors import DatasetError

CAMERAS = {
    "Sony": {"ext": "ARW", "make": "Sony", "model": "ILCE-7SM2", "cfa": None,
             "authors_black": 512, "authors_white": 16383},
    "Fuji": {"ext": "RAF", "make": "FUJIFILM", "model": "X-T2", "cfa": "XTRANS",
             "authors_black": 1024, "authors_white": 16383},
}
SPLITS = {"train": "train", "val": "val", "test": "test"}
LIST_COUNTS = {"Sony": {"train": 1865, "val": 234, "test": 598}, "Fuji": {"train": 1655, "val": 218, "test": 524}}
MAX_RATIO = 300.0
MISALIGNED_SCENES = ("10034", "10045", "10172")
_NAME = re.compile(r"^(?P<scene>\d{5})_(?P<burst>\d{2})_(?P<exposure>[0-9.]+)s$")


def parse_name(stem: str) -> dict[str, Any]:
    """``10003_00_0.04s`` → scene '10003', burst '00', exposure_s 0.04."""
    m = _NAME.match(stem)
    if not m:
        raise DatasetError(f"{stem!r}: not a SID file name <scene:5>_<burst:2>_<exposure>s")
    return {"scene": m["scene"], "burst": m["burst"], "exposure_s": float(m["exposure"])}


def read_list(camera: str, split: str) -> list[dict[str, Any]]:
    """The authors' list for ``camera`` (Sony|Fuji) and ``split`` (train|val|test), parsed."""
    path = list_file("sid", f"{camera}_{split}_list.txt")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 4 or not parts[2].startswith("ISO") or not parts[3].startswith("F"):
            raise DatasetError(f"{path}:{n}: expected 'short long ISO<n> F<x>', got {line!r}")
        short, long_ = (p[2:] if p.startswith("./") else p for p in parts[:2])
        rows.append({"short": short, "long": long_, "iso": float(parts[2][3:]), "fnumber": float(parts[3][1:]),
                     "list": path.name})
    return rows


@register_source
class SidSource(DatasetSource):
    name = "sid"
    title = "Learning to See in the Dark (SID): Sony α7S II and Fujifilm X-T2 short/long exposure raw pairs"
    layout = "Sony/{short,long}/<scene>_<burst>_<exposure>s.ARW, Fuji/{short,long}/*.RAF"
    licence = ("Not stated by the authors (code MIT); academic use; redistribution terms unknown, so not "
               "republished by isp-bench")
    licence_class = "research-only"
    redistributable = False
    url = "https://github.com/cchen156/Learning-to-See-in-the-Dark (Sony.zip 25 GB, Fuji.zip 52 GB)"
    citation = "C. Chen, Q. Chen, J. Xu, V. Koltun. Learning to See in the Dark. CVPR 2018."
    target_kind = "raw"
    supports_lists_only = True
    options_help = {"model": "camera folder to ingest: Sony or Fuji (default: every camera folder present)"}
    notes = ("Fuji is X-Trans (cfa XTRANS): no registered model (all take packed_rggb or bilinear_rgb, Bayer "
             "only) can take Fuji rows. Flags: misaligned (10034, 10045, 10172), misaligned_ambiguous (Fuji "
             "10172). protocol_split: the authors' test protocol (burst 00 of each test scene).")

    def read_target(self, path: Path):
        """The long exposure rendered as the authors render their ground truth (``train_Sony.py``: LibRaw with the
        camera's white balance, no auto-brightness, 16 bits, full size), but in sensor orientation (``user_flip=0``)
        so that it lies on the short exposure's mosaic."""
        from isp_bench.raw import render_raw
        return render_raw(path, use_camera_wb=True, half_size=False, no_auto_bright=True, output_bps=16, user_flip=0)

    def _cameras(self, root: Path | None) -> list[str]:
        wanted = self.options.get("model")
        if wanted is not None:
            match = [c for c in CAMERAS if c.lower() == str(wanted).lower()]
            if not match:
                raise DatasetError(f"sid: --model {wanted!r} is not one of {list(CAMERAS)}")
            cams = match
        else:
            cams = list(CAMERAS)
        if root is None or self.options.get("lists_only"):
            return cams
        present = [c for c in cams if (root / c).is_dir()]
        if not present:
            raise DatasetError(f"{root}: no {' or '.join(c + '/' for c in cams)} folder; SID unpacks to "
                               "Sony/{short,long} and Fuji/{short,long}: pass their parent folder with --root")
        return present

    def _root(self, root: Path | None) -> Path | None:
        if self.options.get("lists_only") and (root is None or not Path(root).is_dir()):
            return None
        return find_root(root, lambda p: any((p / c).is_dir() for c in CAMERAS),
                         "the SID dataset (Sony/ and/or Fuji/ folders)", names=("SID", "dataset"))

    def pairs(self, root: Path | None) -> Iterator[PairRecord]:
        base = self._root(root)
        prefix = "" if base is None or base == Path(root) else base.relative_to(root).as_posix() + "/"
        for camera in self._cameras(base):
            cam = CAMERAS[camera]
            for split in SPLITS:
                for item in read_list(camera, split):
                    item = {**item, "short": prefix + item["short"], "long": prefix + item["long"]}
                    yield self._record(camera, cam, split, item)

    def _record(self, camera: str, cam: dict[str, Any], split: str, item: dict[str, Any]) -> PairRecord:
        short_stem = Path(item["short"]).stem
        short, long_ = parse_name(short_stem), parse_name(Path(item["long"]).stem)
        flags = []
        if short["scene"] in MISALIGNED_SCENES:
            flags.append("misaligned" if camera == "Sony" else "misaligned_ambiguous")
        # the authors' test protocol scores burst 00 only; other test bursts are outside it
        protocol_split = split if split != "test" else ("test" if short["burst"] == "00" else None)
        ratio = min(long_["exposure_s"] / short["exposure_s"], MAX_RATIO)
        fill = {"iso": item["iso"], "fnumber": item["fnumber"], "exposure_s": short["exposure_s"],
                "make": cam["make"], "model": cam["model"]}
        if cam["cfa"]:
            fill["cfa"] = cam["cfa"]
        return PairRecord(
            pair_id=f"{camera}/{short_stem}", scene=f"{camera}/{short['scene']}", split=split, role="low_light",
            input_path=item["short"], target_path=item["long"], subset=camera,
            target_device=f"{cam['make']} {cam['model']} long exposure (raw)", exposure_ratio=ratio, flags=flags,
            fill=fill, protocol_split=protocol_split,
            extra={"burst": short["burst"], "long_exposure_s": long_["exposure_s"], "list": item["list"],
                   "ratio_uncapped": long_["exposure_s"] / short["exposure_s"]},
        )

    def finish_row(self, row: dict[str, Any], target_info: dict[str, Any] | None) -> dict[str, Any]:
        row = super().finish_row(row, target_info)
        camera = row["subset"]
        cam = CAMERAS.get(camera, {})
        black = row.get("black_level")
        if black and cam and any(abs(b - cam["authors_black"]) > 0.5 for b in black):
            row["flags"].append("black_level_differs_from_authors_code")
        return row

    def check_layout(self, root: Path) -> LayoutReport:
        root = self._root(root)
        found: dict[str, int] = {}
        expected: dict[str, int] = {}
        missing: list[str] = []
        for camera in self._cameras(root):
            files = set()
            for split in SPLITS:
                rows = read_list(camera, split)
                expected[f"{camera} {split} pairs"] = len(rows)
                found[f"{camera} {split} pairs"] = sum((root / r["short"]).is_file() and (root / r["long"]).is_file()
                                                       for r in rows)
                files |= {r["short"] for r in rows} | {r["long"] for r in rows}
            expected[f"{camera} files"] = len(files)
            present = {f for f in files if (root / f).is_file()}
            found[f"{camera} files"] = len(present)
            missing += sorted(files - present)
        return LayoutReport(self.name, str(root), found=found, expected=expected, missing=missing)
