"""PairDataset: a torch Dataset over a manifest split, served from the preprocessing cache."""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from isp_bench.data.augment import DIHEDRAL, crop_packed_patch
from isp_bench.data.cache import PreprocessCache
from isp_bench.errors import IspBenchError
from isp_bench.manifest import Manifest, read_manifest
from isp_bench.raw.cfa import demosaic_bilinear, unpack_rggb

INPUTS = ("raw", "rgb", "thumb")


class PairDataset(Dataset):
    """Samples of one split of a manifest.

    Each sample is a dict of tensors: ``raw`` (4×h×w packed R, Gr, Gb, B), ``target`` (3×2h×2w sRGB in
    [0, 1]), ``linear_target`` when the pair has one, ``rgb`` (bilinear-demosaiced camera RGB, if asked),
    ``thumb`` (CRISPnet's whole-frame thumbnail, if asked: computed from the *whole* frame, so a patch
    sees the same global input as full-frame inference), ``wb`` (4, packing order, G = 1), ``iso``,
    ``exposure_s``, ``noise`` (S, O), ``color_matrix`` (3×3 camera → XYZ), and ``pair_id``. Metadata a
    file does not carry is 0 (``noise``, ``iso``, ``exposure_s``) or identity (``color_matrix``).

    A pair with an ``exposure_ratio`` above 1 (a short exposure against a longer-exposure target) has
    its packed raw multiplied by that ratio and clipped to 1, as Chen et al. (SID, CVPR 2018) feed
    their networks; ``thumb`` and ``rgb`` are computed from the amplified raw. The ratio is known from
    the capture (exposure times), never from the target.

    With ``patch`` (full-resolution height, width; even) every item is a random patch with a random
    flip/rotation when ``augment`` is set (CFA-exact, see :mod:`isp_bench.data.augment`);
    ``samples_per_epoch`` sets the length. Without ``patch`` items are whole frames in manifest order.
    Randomness comes from ``seed``, the epoch (:meth:`set_epoch`) and the index only, so runs are
    reproducible with any number of loader workers.
    """

    def __init__(
        self,
        manifest: Manifest | str | os.PathLike,
        root: str | os.PathLike,
        split: str | None,
        *,
        cache_dir: str | os.PathLike | None = None,
        patch: tuple[int, int] | None = None,
        augment: bool = False,
        inputs: Sequence[str] = ("raw",),
        roles: Sequence[str] | None = None,
        subsets: Sequence[str] | None = None,
        samples_per_epoch: int | None = None,
        seed: int = 0,
        build_workers: int | None = None,
        progress: bool = True,
    ):
        self.manifest = manifest if isinstance(manifest, Manifest) else read_manifest(manifest)
        unknown = set(inputs) - set(INPUTS)
        if unknown:
            raise IspBenchError(f"unknown dataset inputs {sorted(unknown)}; choose from {', '.join(INPUTS)}")
        rows = [r for r in self.manifest.rows()
                if (split is None or r["split"] == split)
                and (roles is None or r["role"] in roles)
                and (subsets is None or r["subset"] in subsets)]
        if not rows:
            raise IspBenchError(f"{self.manifest.path}: no pairs for split={split!r} roles={roles} subsets={subsets}")
        if patch is not None and (patch[0] % 2 or patch[1] % 2):
            raise IspBenchError(f"patch size {patch} must be even (whole 2×2 CFA tiles)")
        self.rows = rows
        self.patch = tuple(patch) if patch is not None else None
        self.augment = augment
        self.inputs = tuple(inputs)
        self.samples_per_epoch = samples_per_epoch
        self.seed = seed
        self.epoch = 0
        self.cache = PreprocessCache(root, cache_dir)
        self.cache.build(rows, workers=build_workers, progress=progress)
        self._thumbs: dict[int, torch.Tensor] = {}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        if self.patch is not None and self.samples_per_epoch is not None:
            return self.samples_per_epoch
        return len(self.rows)

    def _thumb(self, index: int, raw: np.ndarray) -> torch.Tensor:
        if index not in self._thumbs:
            from isp_bench.models.crispnet import make_thumb

            self._thumbs[index] = make_thumb(torch.from_numpy(amplify(raw, self.rows[index]))[None])[0]
        return self._thumbs[index]

    def __getitem__(self, item: int) -> dict[str, Any]:
        index = item % len(self.rows)
        row = self.rows[index]
        entry = self.cache.load(row)
        targets = [t for t in (entry.target, entry.linear_target) if t is not None]
        if self.patch is None:
            raw = np.array(entry.raw)
            crops = [np.array(t) for t in targets]
        else:
            rng = np.random.default_rng([self.seed, self.epoch, item])
            ph, pw = self.patch
            full_h, full_w = 2 * entry.raw.shape[1], 2 * entry.raw.shape[2]
            # ops that transpose need the transposed region; keep only the ops whose region fits
            fits = [op for op in (DIHEDRAL if self.augment else DIHEDRAL[:1])
                    if ((pw, ph) if op[0] else (ph, pw))[0] + 2 <= full_h and ((pw, ph) if op[0] else (ph, pw))[1] + 2 <= full_w]
            if not fits:
                raise IspBenchError(f"pair {row['pair_id']}: patch {self.patch} (+2 px for augmentation) does not fit "
                                    f"its {full_h}×{full_w} frame; choose a smaller patch")
            op = fits[int(rng.integers(len(fits)))]
            rh, rw = (pw + 2, ph + 2) if op[0] else (ph + 2, pw + 2)
            top = 2 * int(rng.integers(0, (full_h - rh) // 2 + 1))
            left = 2 * int(rng.integers(0, (full_w - rw) // 2 + 1))
            raw, crops = crop_packed_patch(entry.raw, targets, top, left, self.patch, op)
        raw = amplify(raw, row)
        sample: dict[str, Any] = {"pair_id": row["pair_id"], "raw": torch.from_numpy(raw)}
        names = [n for n, t in (("target", entry.target), ("linear_target", entry.linear_target)) if t is not None]
        for name, crop in zip(names, crops):
            sample[name] = torch.from_numpy(crop.astype(np.float32) / 65535.0)
        if "rgb" in self.inputs:
            rgb = demosaic_bilinear(unpack_rggb(raw), "RGGB")
            sample["rgb"] = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))
        if "thumb" in self.inputs:
            sample["thumb"] = self._thumb(index, entry.raw)
        sample.update(metadata_tensors(row))
        return sample


def amplify(packed: np.ndarray, row: dict[str, Any]) -> np.ndarray:
    """Packed raw (float, [0, 1]) × the pair's ``exposure_ratio`` when above 1, clipped to 1 (SID)."""
    packed = np.asarray(packed, dtype=np.float32)
    ratio = row.get("exposure_ratio")
    if ratio is None or not np.isfinite(ratio) or ratio <= 1.0:
        return np.array(packed)
    return np.minimum(packed * np.float32(ratio), 1.0)


def metadata_tensors(row: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The metadata a model may consume, as float32 tensors (see :class:`PairDataset`)."""
    wb = row.get("wb_as_shot") or [1.0, 1.0, 1.0]
    noise = (row.get("noise_profile") or [0.0, 0.0])[:2]
    matrix = row.get("color_matrix") or np.eye(3).ravel().tolist()
    f32 = lambda v: torch.tensor(v, dtype=torch.float32)  # noqa: E731
    return {
        "wb": f32([wb[0], wb[1], wb[1], wb[2]]),
        "iso": f32(row.get("iso") or 0.0),
        "exposure_s": f32(row.get("exposure_s") or 0.0),
        "noise": f32(noise),
        "color_matrix": f32(matrix).reshape(3, 3),
    }
