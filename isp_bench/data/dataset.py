"""PairDataset: a torch Dataset over a manifest split, served from the preprocessing cache."""

from __future__ import annotations

import os
import sys
from collections import OrderedDict
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, default_collate, get_worker_info

from isp_bench.batches import bilinear_rgb, make_thumb, metadata_tensors
from isp_bench.data.augment import DIHEDRAL, PatchViews, patch_views, region_shape
from isp_bench.data.cache import CacheEntry, PreprocessCache
from isp_bench.errors import IspBenchError
from isp_bench.manifest import Manifest, read_manifest

INPUTS = ("raw", "rgb", "thumb")
OPEN_ENTRIES = 256
"""Cache entries a process keeps memory-mapped at once (three file descriptors each), least recently used dropped."""
TARGET_SCALE = np.float32(65535.0)
"""Cached targets are uint16; samples hold them as float32 in [0, 1] (``value / 65535``)."""


class PairDataset(Dataset):
    """Samples of one split of a manifest.

    Each sample is a dict of tensors: ``raw`` (4×h×w packed R, Gr, Gb, B), ``target`` (3×2h×2w sRGB in
    [0, 1]), ``linear_target`` when the pair has one, ``rgb`` (bilinear-demosaiced camera RGB, if asked),
    ``thumb`` (CRISPnet's whole-frame thumbnail, if asked: computed from the *whole* frame, so a patch
    sees the same global input as full-frame inference), the metadata of :func:`isp_bench.batches.metadata_tensors`
    (``wb``, ``iso``, ``exposure_s``, ``noise``, ``color_matrix``; metadata a pair lacks is filled with
    the neutral values that module documents, so that samples of different pairs stack), and ``pair_id``.
    The metadata tensors and ``thumb`` are shared between the samples of a pair: treat them as read-only.

    A pair with an ``exposure_ratio`` above 1 (a short exposure against a longer-exposure target) has
    its packed raw multiplied by that ratio and clipped to 1, as Chen et al. (SID, CVPR 2018) feed
    their networks; ``thumb`` and ``rgb`` are computed from the amplified raw. The ratio is known from
    the capture (exposure times), never from the target.

    With ``patch`` (full-resolution height, width; even) every item is a random patch with a random
    flip/rotation when ``augment`` is set (CFA-exact, see :mod:`isp_bench.data.augment`);
    ``samples_per_epoch`` sets the length. Without ``patch`` items are whole frames in manifest order.
    Randomness comes from ``seed``, the epoch (:meth:`set_epoch`) and the index only, so runs are
    reproducible with any number of loader workers.

    ``dataset[items]`` with a list of items returns their samples already stacked (:meth:`batch`,
    equal to ``default_collate([dataset[i] for i in items])``): each patch is cut from the
    memory-mapped cache arrays as strided views (:func:`isp_bench.data.augment.patch_views`) and
    written once, flipped, rotated and converted to float, into the batch tensors, which a DataLoader
    worker allocates in shared memory, so nothing is copied again on the way to the trainer.
    :func:`batch_loader` is the DataLoader that asks for whole batches. Each process (each worker)
    opens the cache entries it reads lazily, keeping at most :data:`OPEN_ENTRIES` of them mapped;
    nothing memory-mapped is pickled with the dataset. Torch runs every DataLoader worker with one
    thread (``torch.set_num_threads(1)`` in its worker loop), so workers do not oversubscribe the cores.

    Pairs not yet in the preprocessing cache are preprocessed first
    (:meth:`~isp_bench.data.cache.PreprocessCache.build` with ``build_workers`` on ``build_scheduler``).
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
        build_scheduler: str = "local",
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
        self.cache.build(rows, workers=build_workers, scheduler=build_scheduler, progress=progress)
        self._reset_process_state()

    def _reset_process_state(self) -> None:
        """Per-process state, filled lazily: open cache entries, metadata tensors, thumbnails."""
        self._entries: OrderedDict[int, CacheEntry] = OrderedDict()
        self._metadata: dict[int, dict[str, torch.Tensor]] = {}
        self._thumbs: dict[int, torch.Tensor] = {}
        self._buffers = BatchBuffers()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for key in ("_entries", "_metadata", "_thumbs", "_buffers"):
            state.pop(key)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset_process_state()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        if self.patch is not None and self.samples_per_epoch is not None:
            return self.samples_per_epoch
        return len(self.rows)

    def _entry(self, index: int) -> CacheEntry:
        entry = self._entries.get(index)
        if entry is None:
            entry = self._entries[index] = self.cache.load(self.rows[index])
            if len(self._entries) > OPEN_ENTRIES:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(index)
        return entry

    def _thumb(self, index: int, raw: np.ndarray) -> torch.Tensor:
        if index not in self._thumbs:
            self._thumbs[index] = make_thumb(torch.from_numpy(amplify(raw, self.rows[index]))[None])[0]
        return self._thumbs[index]

    def _metadata_of(self, index: int) -> dict[str, torch.Tensor]:
        if index not in self._metadata:
            self._metadata[index] = metadata_tensors(self.rows[index], fill_missing=True)
        return self._metadata[index]

    def _window(self, item: int, index: int, raw_shape: tuple[int, ...]) -> tuple[int, int, tuple[bool, bool, bool]]:
        """(top, left, op) of item ``item``'s patch: a pure function of seed, epoch and item."""
        rng = np.random.default_rng([self.seed, self.epoch, item])
        full_h, full_w = 2 * raw_shape[1], 2 * raw_shape[2]
        # ops that transpose need the transposed region; keep only the ops whose region fits
        fits = [op for op in (DIHEDRAL if self.augment else DIHEDRAL[:1])
                if region_shape(self.patch, op)[0] <= full_h and region_shape(self.patch, op)[1] <= full_w]
        if not fits:
            raise IspBenchError(f"pair {self.rows[index]['pair_id']}: patch {self.patch} (+2 px for augmentation) "
                                f"does not fit its {full_h}×{full_w} frame; choose a smaller patch")
        op = fits[int(rng.integers(len(fits)))]
        rh, rw = region_shape(self.patch, op)
        top = 2 * int(rng.integers(0, (full_h - rh) // 2 + 1))
        left = 2 * int(rng.integers(0, (full_w - rw) // 2 + 1))
        return top, left, op

    def __getitem__(self, item: int | Sequence[int]) -> dict[str, Any]:
        if not isinstance(item, (int, np.integer)):
            return self.batch(item)
        return {key: value[0] if isinstance(value, (torch.Tensor, list)) else value
                for key, value in self.batch([item]).items()}

    def _targets(self, index: int) -> dict[str, np.ndarray]:
        entry = self._entry(index)
        return {n: t for n, t in (("target", entry.target), ("linear_target", entry.linear_target)) if t is not None}

    def batch(self, items: Sequence[int]) -> dict[str, Any]:
        """The samples of ``items`` stacked along a new first axis (see the class docstring)."""
        items = [int(i) for i in items]
        indices = [item % len(self.rows) for item in items]
        if self.patch is None and len(items) > 1:
            return default_collate([self[i] for i in items])
        names = list(self._targets(indices[0]))
        for index in indices:
            if list(self._targets(index)) != names:
                raise IspBenchError(f"pairs {self.rows[indices[0]]['pair_id']} and {self.rows[index]['pair_id']} "
                                    f"do not have the same targets ({names} vs {list(self._targets(index))}); "
                                    "batch pairs with the same targets (choose roles/subsets)")
        raw_shape = self._entry(indices[0]).raw.shape
        ph, pw = self.patch if self.patch is not None else (2 * raw_shape[1], 2 * raw_shape[2])
        recycle = self.patch is not None  # patches: a few small buffers, used again and again; frames: fresh memory
        raw_tensor = self._buffers.take((len(items), 4, ph // 2, pw // 2), recycle=recycle)
        target_tensors = {name: self._buffers.take((len(items), 3, ph, pw), recycle=recycle) for name in names}
        raw = raw_tensor.numpy()
        targets = {name: t.numpy() for name, t in target_tensors.items()}
        for k, (item, index) in enumerate(zip(items, indices)):
            entry = self._entry(index)
            if self.patch is None:
                raw[k] = entry.raw
                for name, target in self._targets(index).items():
                    np.divide(target, TARGET_SCALE, out=targets[name][k], dtype=np.float32)
            else:
                top, left, op = self._window(item, index, entry.raw.shape)
                views = patch_views(entry.raw, list(self._targets(index).values()), top, left, self.patch, op)
                views.packed_raw(out=raw[k])
                for name, region in zip(names, views.regions):
                    _write_target(views, region, targets[name][k])
            amplify(raw[k], self.rows[index], out=raw[k])
        batch: dict[str, Any] = {"pair_id": [self.rows[i]["pair_id"] for i in indices], "raw": raw_tensor,
                                 **target_tensors}
        if "rgb" in self.inputs:
            batch["rgb"] = bilinear_rgb(batch["raw"])
        if "thumb" in self.inputs:
            batch["thumb"] = torch.stack([self._thumb(i, self._entry(i).raw) for i in indices])
        metadata = [self._metadata_of(i) for i in indices]
        batch.update({key: torch.stack([m[key] for m in metadata]) for key in metadata[0]})
        return batch


class BatchBuffers:
    """Float32 batch tensors of one process, reused once nothing refers to them any more.

    Writing a batch into fresh memory costs a page fault per 4 KiB page, more than cutting the
    patches (measured: 650 vs 1 550 patches/s on one core), so the main process recycles its batch
    arrays: an array is handed out again only when no tensor, view or storage refers to it (its
    reference count is the pool's own), so a consumer that keeps a batch is never overwritten. At most
    ``keep`` arrays per shape are kept. In a DataLoader worker every batch gets fresh shared memory
    instead (as torch's default_collate allocates its output), so sending it to the trainer copies
    nothing; the trainer's process frees it.
    """

    def __init__(self, keep: int = 4):
        self.keep = keep
        self._arrays: dict[tuple[int, ...], list[np.ndarray]] = {}

    def take(self, shape: tuple[int, ...], *, recycle: bool = True) -> torch.Tensor:
        """An uninitialised float32 tensor of ``shape`` (a recycled one only with ``recycle``)."""
        if get_worker_info() is not None:
            storage = torch.empty(0)._typed_storage()._new_shared(int(np.prod(shape)))
            return torch.empty(0).new(storage).view(shape)
        if not recycle:
            return torch.empty(shape, dtype=torch.float32)
        pool = self._arrays.setdefault(shape, [])
        for array in pool:
            if sys.getrefcount(array) <= 3:  # the pool's list, this loop's name, getrefcount's argument
                return torch.from_numpy(array)
        array = np.empty(shape, np.float32)
        if len(pool) < self.keep:
            pool.append(array)
        return torch.from_numpy(array)


def _write_target(views: PatchViews, region: np.ndarray, out: np.ndarray) -> None:
    """``out`` = the uint16 target patch of ``region`` as float32 ``value / 65535``. Converting the
    contiguous region first and then copying the transposed view is the faster order for transposing ops."""
    if views.op[0]:
        out[...] = views.place(np.divide(region, TARGET_SCALE, dtype=np.float32))
    else:
        np.divide(views.place(region), TARGET_SCALE, out=out, dtype=np.float32)


def batch_loader(dataset: PairDataset, items: Sequence[int], batch_size: int, *, workers: int = 0,
                 **loader_options: Any) -> DataLoader:
    """A DataLoader over the dataset's ``items`` in order, ``batch_size`` at a time (the last batch may
    be shorter), each batch made by one :meth:`PairDataset.batch` call in a worker: no per-sample
    collation (torch's "automatic batching disabled" mode with a batch sampler)."""
    return DataLoader(dataset, batch_size=None, sampler=BatchSampler(items, batch_size, drop_last=False),
                      num_workers=workers, **loader_options)


def amplify(packed: np.ndarray, row: dict[str, Any], out: np.ndarray | None = None) -> np.ndarray:
    """Packed raw (float, [0, 1]) × the pair's ``exposure_ratio`` when above 1, clipped to 1 (SID).

    Returns a new float32 array, or ``out`` (float32, may be ``packed`` itself) written in place."""
    packed = np.asarray(packed, dtype=np.float32)
    ratio = row.get("exposure_ratio")
    if ratio is None or not np.isfinite(ratio) or ratio <= 1.0:
        if out is None:
            return np.array(packed)
        if out is not packed:
            out[...] = packed
        return out
    out = np.multiply(packed, np.float32(ratio), out=out)
    return np.minimum(out, np.float32(1.0), out=out)
