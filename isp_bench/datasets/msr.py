"""MSR demosaicing dataset (Khashabi et al., IEEE TIP 2014): Panasonic and Canon, linear, with/without noise.

Published layout: ``Dataset_LINEAR_{with,without}_noise/bayer_{panasonic,canon}/{input,groundtruth}/<id>.png``
with the split lists ``train.txt``, ``validation.txt``, ``test.txt`` (searched in the camera folder,
then the noise folder, then the root). Inputs are 16-bit grey mosaics (220×132), the ground truth
16-bit RGBA (the alpha channel carries nothing: drop it; rows carry the flag ``target_alpha``).

CFA phase: loaders in the wild disagree, so it is *measured*: each 2×2 sub-lattice of the input is
correlated with the ground-truth channels at the same pixels and the best Bayer pattern wins
(:func:`isp_bench.datasets._common.detect_bayer_phase`); the pattern is the row's ``cfa`` and the
evidence sits in ``extra.input.cfa_detection``; a weak margin adds ``cfa_phase_ambiguous``.
Black level 0 and white level 65535 (linear data in 16-bit PNGs) are dataset-level values, named in
``filled_from_dataset``. Pairs with no split list entry get split ``unlisted``.

Licence: Microsoft Research non-commercial licence that forbids distributing the corpus or any
derivative work: ``redistributable = False``, so publishing refuses it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from isp_bench.datasets._common import detect_bayer_phase, find_root, read_png_mosaic, rel
from isp_bench.datasets.base import DatasetSource, LayoutReport, PairRecord, register_source
from isp_bench.errors import DatasetError
from isp_bench.raw import RawCapture

NOISE = ("with_noise", "without_noise")
CAMERAS = {"panasonic": "Panasonic", "canon": "Canon"}
LISTS = {"train": "train.txt", "val": "validation.txt", "test": "test.txt"}
WHITE_LEVEL = 65535.0
AMBIGUOUS_MARGIN = 0.05


def _folders(root: Path) -> list[tuple[str, str, Path]]:
    out = []
    for noise in NOISE:
        for cam in CAMERAS:
            folder = root / f"Dataset_LINEAR_{noise}" / f"bayer_{cam}"
            if (folder / "input").is_dir():
                out.append((noise, cam, folder))
    return out


def _read_lists(root: Path, folder: Path) -> dict[str, str]:
    """id → split from the first folder (camera, noise, root) that holds the lists."""
    for where in (folder, folder.parent, root):
        found = {split: where / name for split, name in LISTS.items() if (where / name).is_file()}
        if found:
            out: dict[str, str] = {}
            for split, path in found.items():
                for line in path.read_text().split():
                    out[Path(line.strip()).stem] = split
            return out
    return {}


@register_source
class MsrSource(DatasetSource):
    name = "msr"
    title = "MSR demosaicing dataset (Microsoft Research Cambridge): linear Bayer mosaics with ground truth"
    layout = ("Dataset_LINEAR_{with,without}_noise/bayer_{panasonic,canon}/{input,groundtruth}/<id>.png, "
              "train.txt, validation.txt, test.txt")
    licence = ("Microsoft Research non-commercial licence: research use only; you may not distribute the corpus "
               "or any derivative works in any form")
    licence_class = "non-commercial-no-redistribution"
    redistributable = False
    url = "https://www.microsoft.com/en-us/download/details.aspx?id=52535"
    citation = "D. Khashabi, S. Nowozin, J. Jancsary, A. Fitzgibbon. Joint Demosaicing and Denoising via Learned Nonparametric Random Fields. IEEE TIP 2014."
    input_kind = "mosaic_image"
    notes = "CFA phase measured per image against the ground truth; never redistributed (publishing refuses it)."

    def _root(self, root: Path) -> Path:
        return find_root(root, lambda p: bool(_folders(p)),
                         "the MSR demosaicing dataset (Dataset_LINEAR_*_noise/bayer_*/input)")

    def pairs(self, root: Path) -> Iterator[PairRecord]:
        base = self._root(root)  # paths stay relative to the folder given to the ingest
        for noise, cam, folder in _folders(base):
            split_of = _read_lists(base, folder)
            for png in sorted((folder / "input").glob("*.png")):
                ident = png.stem
                gt = folder / "groundtruth" / png.name
                yield PairRecord(
                    pair_id=f"{noise}/{cam}/{ident}", scene=f"{cam}/{ident}", split=split_of.get(ident, "unlisted"),
                    role="demosaic", input_path=rel(png, root), target_path=rel(gt, root), subset=f"{noise}/{cam}",
                    target_device="ground truth (downsampled linear RGB)", exposure_ratio=1.0,
                    fill={"make": CAMERAS[cam]}, flags=["target_alpha"],
                )

    def read_input(self, path: Path) -> RawCapture:
        """The input mosaic, its CFA phase measured against the ground truth beside it."""
        from isp_bench.images import read_image

        path = Path(path)
        mosaic = read_png_mosaic(path)
        gt_path = path.parent.parent / "groundtruth" / path.name
        if not gt_path.is_file():
            raise DatasetError(f"{gt_path}: ground truth missing, so the CFA phase of {path.name} cannot be "
                               "measured; complete the download")
        gt = read_image(gt_path)
        if gt.ndim != 3 or gt.shape[2] < 3 or gt.shape[:2] != mosaic.shape:
            raise DatasetError(f"{gt_path}: expected RGB(A) of the input's size {mosaic.shape}, got {gt.shape}")
        pattern, margin = detect_bayer_phase(mosaic, gt[..., :3])
        flags = ["cfa_phase_ambiguous"] if margin < AMBIGUOUS_MARGIN else []
        return RawCapture(
            mosaic=mosaic, cfa=pattern, black_level=(0.0, 0.0, 0.0, 0.0), white_level=WHITE_LEVEL, container="PNG",
            extra={"cfa_detection": {"pattern": pattern, "margin": round(margin, 6), "method": "sub-lattice correlation"},
                   "flags": flags, "filled_from_dataset": ["black_level", "white_level"],
                   "target_channels": int(gt.shape[2])},
        )

    def check_layout(self, root: Path) -> LayoutReport:
        root = self._root(root)
        found, expected, missing, lists = {}, {}, [], []
        for noise, cam, folder in _folders(root):
            ids = {p.stem for p in (folder / "input").glob("*.png")}
            gts = {p.stem for p in (folder / "groundtruth").glob("*.png")}
            listed = _read_lists(root, folder)
            key = f"{noise}/{cam}"
            found[f"{key} inputs"], found[f"{key} ground truth"] = len(ids), len(ids & gts)
            expected[f"{key} ground truth"] = len(ids)
            expected[f"{key} listed"] = len(ids)
            found[f"{key} listed"] = len(ids & set(listed))
            missing += [f"{rel(folder, root)}/groundtruth/{i}.png" for i in sorted(ids - gts)]
            if not listed:
                lists.append(f"{rel(folder, root)}/{{train,validation,test}}.txt (split lists: without them its "
                             "pairs get split 'unlisted')")
        # the lists first: a missing one changes the split of every pair of its folder, a missing file only its own
        return LayoutReport(self.name, str(root), found=found, expected=expected, missing=lists + missing)

    def finish_row(self, row: dict[str, Any], target_info: dict[str, Any] | None) -> dict[str, Any]:
        row = super().finish_row(row, target_info)
        if target_info and target_info.get("mode") not in (None, "RGBA") and "target_alpha" in row["flags"]:
            row["flags"].remove("target_alpha")
        return row
