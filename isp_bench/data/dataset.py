"""PairDataset: a torch Dataset over a manifest split, served from the preprocessing cache."""

from __future__ import annotations

import os
import shutil
import threading
import warnings
import weakref
from collections import Counter, OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from itertools import islice
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, default_collate, get_worker_info

from isp_bench.batches import bilinear_rgb, make_thumb, metadata_tensors
from isp_bench.data.augment import DIHEDRAL, PatchViews, patch_views, region_shape
from isp_bench.data.cache import CacheEntry, PreprocessCache
from isp_bench.errors import IspBenchError, IspBenchWarning
from isp_bench.manifest import Manifest, read_manifest

INPUTS = ("raw", "rgb", "thumb")
TARGETS = ("target", "linear_target")
OPEN_ENTRIES = 256
"""Cache entries a process keeps memory-mapped at once (three file descriptors each), least recently used dropped."""
TARGET_SCALE = np.float32(65535.0)
"""Cached targets are uint16; samples hold them as float32 in [0, 1] (``value / 65535``)."""


#: Flags of pairs whose target cannot be laid on the raw pixel for pixel, or that have none (FiveK's experts'
#: crops, a resized rendering, the MetaISP full frames' half-resolution renditions, whose scoring protocol is not
#: built): left out of training and evaluation, which need aligned targets.
UNALIGNABLE_FLAGS = ("cropped_target", "resized_target", "target_half_resolution", "no_target")


def unalignable(row: dict[str, Any]) -> str | None:
    """The first of :data:`UNALIGNABLE_FLAGS` the manifest row carries (None: its target can be laid on its raw)."""
    return next((flag for flag in UNALIGNABLE_FLAGS if flag in row["flags"]), None)


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    """Warn with ``message`` once per process (a run builds the same split's dataset several times, and other code's
    ``warnings.catch_warnings`` resets Python's own once-per-location memory)."""
    if message not in _WARNED:
        _WARNED.add(message)
        warnings.warn(message, IspBenchWarning, stacklevel=3)


class PairDataset(Dataset):
    """Samples of one split of a manifest.

    Each sample is a dict of tensors: ``raw`` (4×h×w packed R, Gr, Gb, B), ``target`` (3×2h×2w sRGB in
    [0, 1]), ``linear_target`` when the pair has one (of these two, only those in ``targets``: a trainer
    whose objective needs no linear target saves cutting and copying it), ``rgb`` (bilinear-demosaiced camera RGB, if asked),
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
    ``illuminant_gains`` (lo, hi) multiplies each patch's red and blue raw channels by their own gain, drawn
    log-uniformly in [lo, hi] (green kept), as if its scene were lit by another light: the raw is clipped at 1
    (the sensor saturates), ``thumb`` (and ``rgb``) take the same gains, ``wb`` is divided by them, so that
    white-balancing (``wb`` × raw) gives what it gave before and the target stays right. A model that reads
    the white balance must then use it; one that does not cannot know the light.
    Randomness comes from ``seed``, the epoch (:meth:`set_epoch`) and the index only, so runs are
    reproducible with any number of loader workers.

    ``dataset[items]`` with a list of items returns their samples already stacked (:meth:`batch`,
    equal to ``default_collate([dataset[i] for i in items])``): each patch is cut from the
    memory-mapped cache arrays as strided views (:func:`isp_bench.data.augment.patch_views`) and
    written once, flipped, rotated and converted to float, into the batch tensors, which in a DataLoader
    worker are slots of shared memory (:class:`SharedSlots`), so nothing is copied again on the way to
    the trainer. :class:`BatchLoader` asks for whole batches. Each process (each worker)
    opens the cache entries it reads lazily, keeping at most :data:`OPEN_ENTRIES` of them mapped;
    nothing memory-mapped is pickled with the dataset. Torch runs every DataLoader worker process with one
    thread (``torch.set_num_threads(1)`` in its worker loop), so workers do not oversubscribe the cores;
    loader threads share their process's torch threads. Loader threads share the open entries (their
    order is kept under a lock), metadata and thumbnails; each has its own batch buffers.

    Pairs flagged with one of :data:`UNALIGNABLE_FLAGS` (a target resized or cropped in its renderer, or none) are
    left out, with a warning, when targets are asked for: ``left_out`` maps their pair ids to the flag.
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
        illuminant_gains: tuple[float, float] | None = None,
        inputs: Sequence[str] = ("raw",),
        targets: Sequence[str] = TARGETS,
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
        if set(targets) - set(TARGETS):
            raise IspBenchError(f"unknown dataset targets {sorted(set(targets) - set(TARGETS))}; choose from "
                                f"{', '.join(TARGETS)}")
        rows = [r for r in self.manifest.rows()
                if (split is None or r["split"] == split)
                and (roles is None or r["role"] in roles)
                and (subsets is None or r["subset"] in subsets)]
        self.left_out = {r["pair_id"]: unalignable(r) for r in rows if targets and unalignable(r)}
        if self.left_out:
            counts = ", ".join(f"{n} {flag}" for flag, n in sorted(Counter(self.left_out.values()).items()))
            _warn_once(f"{self.manifest.path}: {len(self.left_out)} of the {len(rows)} pairs of split {split!r} "
                       f"left out, without a target that can be laid on the raw ({counts})")
            rows = [r for r in rows if r["pair_id"] not in self.left_out]
        if not rows:
            splits = Counter(r["split"] for r in self.manifest.rows())
            raise IspBenchError(f"{self.manifest.path}: no pairs for split={split!r} roles={roles} subsets={subsets}"
                                + (" that can be aligned with their targets" if self.left_out else "")
                                + "; its splits: "
                                + ", ".join(f"{name} ({n} pairs)" for name, n in sorted(splits.items())))
        if patch is not None and (patch[0] % 2 or patch[1] % 2):
            raise IspBenchError(f"patch size {patch} must be even (whole 2×2 CFA tiles)")
        self.rows = rows
        self.patch = tuple(patch) if patch is not None else None
        self.augment = augment
        if illuminant_gains is not None and (patch is None or not 0 < illuminant_gains[0] <= 1 <= illuminant_gains[1]):
            raise IspBenchError(f"illuminant_gains {illuminant_gains} must be (lo, hi) with 0 < lo <= 1 <= hi, for "
                                "patches (a patch size is needed)")
        self.illuminant_gains = tuple(illuminant_gains) if illuminant_gains is not None else None
        self.inputs = tuple(inputs)
        self.targets = tuple(targets)
        self.samples_per_epoch = samples_per_epoch
        self.seed = seed
        self.epoch = 0
        self.slots: SharedSlots | None = None  # set by BatchLoader while its workers run
        self.cache = PreprocessCache(root, cache_dir)
        self.cache.build(rows, workers=build_workers, scheduler=build_scheduler, progress=progress)
        self._reset_process_state()

    def _reset_process_state(self) -> None:
        """Per-process state, filled lazily: open cache entries, metadata tensors, thumbnails, and each
        thread's batch buffers (loader threads share the rest; the entries' order is kept under a lock)."""
        self._entries: OrderedDict[int, CacheEntry] = OrderedDict()
        self._entries_lock = threading.Lock()
        self._metadata: dict[int, dict[str, torch.Tensor]] = {}
        self._thumbs: dict[int, torch.Tensor] = {}
        self._thread_state = threading.local()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for key in ("_entries", "_entries_lock", "_metadata", "_thumbs", "_thread_state"):
            state.pop(key)
        return state

    @property
    def _buffers(self) -> BatchBuffers:
        """This thread's :class:`BatchBuffers`."""
        if not hasattr(self._thread_state, "buffers"):
            self._thread_state.buffers = BatchBuffers()
        return self._thread_state.buffers

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
        with self._entries_lock:
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

    def _gains(self, item: int) -> np.ndarray:
        """Item ``item``'s illuminant gains (R, Gr, Gb, B; greens 1): a pure function of seed, epoch and item."""
        lo, hi = np.log(self.illuminant_gains)
        red, blue = np.exp(np.random.default_rng([self.seed, self.epoch, item, 1]).uniform(lo, hi, 2))
        return np.array([red, 1.0, 1.0, blue], np.float32)

    def __getitem__(self, item: int | Sequence[int] | SlotRequest) -> dict[str, Any]:
        if isinstance(item, SlotRequest):
            return self.slots.fill(item, self.batch)
        if not isinstance(item, (int, np.integer)):
            return self.batch(item)
        return {key: value[0] if isinstance(value, (torch.Tensor, list)) else value
                for key, value in self.batch([item]).items()}

    def _targets(self, index: int) -> dict[str, np.ndarray]:
        entry = self._entry(index)
        return {n: t for n, t in (("target", entry.target), ("linear_target", entry.linear_target))
                if t is not None and n in self.targets}

    def batch(self, items: Sequence[int], out: dict[str, torch.Tensor] | None = None) -> dict[str, Any]:
        """The samples of ``items`` stacked along a new first axis (see the class docstring); ``raw`` and
        the targets are written straight into the tensors of ``out`` of their name when it has one."""
        out = out or {}
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
        def take(name: str, shape: tuple[int, ...]) -> torch.Tensor:
            return out[name] if name in out else self._buffers.take(shape, recycle=recycle)

        raw_tensor = take("raw", (len(items), 4, ph // 2, pw // 2))
        target_tensors = {name: take(name, (len(items), 3, ph, pw)) for name in names}
        raw = raw_tensor.numpy()
        targets = {name: t.numpy() for name, t in target_tensors.items()}
        for k, (item, index) in enumerate(zip(items, indices)):
            entry, raw_k = self._entry(index), raw[k]
            if self.patch is None:
                raw_k[...] = entry.raw
                for name, target in self._targets(index).items():
                    np.divide(target, TARGET_SCALE, out=targets[name][k], dtype=np.float32)
            else:
                top, left, op = self._window(item, index, entry.raw.shape)
                views = patch_views(entry.raw, list(self._targets(index).values()), top, left, self.patch, op)
                views.packed_raw(out=raw_k)
                for name, region in zip(names, views.regions):
                    _write_target(views, region, targets[name][k])
            amplify(raw_k, self.rows[index], out=raw_k)  # the same view: no copy when the ratio is 1
        gains = torch.from_numpy(np.stack([self._gains(item) for item in items])) if self.illuminant_gains else None
        if gains is not None:
            raw_tensor.mul_(gains[:, :, None, None]).clamp_(max=1.0)
        batch: dict[str, Any] = {"pair_id": [self.rows[i]["pair_id"] for i in indices], "raw": raw_tensor,
                                 **target_tensors}
        if "rgb" in self.inputs:
            batch["rgb"] = bilinear_rgb(batch["raw"])
        if "thumb" in self.inputs:
            batch["thumb"] = torch.stack([self._thumb(i, self._entry(i).raw) for i in indices])
            if gains is not None:  # the thumbnail's channels: R, mean of the greens, B
                batch["thumb"] = (batch["thumb"] * gains[:, [0, 1, 3], None, None]).clamp_(max=1.0)
        metadata = [self._metadata_of(i) for i in indices]
        batch.update({key: torch.stack([m[key] for m in metadata]) for key in metadata[0]})
        if gains is not None:
            batch["wb"] = batch["wb"] / gains
        return batch


def lend(array: np.ndarray, on_return: Callable[[], None]) -> torch.Tensor:
    """A tensor over ``array``'s memory; ``on_return()`` runs once no tensor, view or storage made from it is
    left. The tensor is made from a fresh ndarray view that only its storage holds, and a finalizer on that
    view says when it is gone: exact whatever the interpreter's reference counting (CPython promises no
    particular ``sys.getrefcount`` values, and 3.14 borrows references where 3.13 took them)."""
    view = array.view()
    weakref.finalize(view, on_return).atexit = False
    return torch.from_numpy(view)


class BatchBuffers:
    """Float32 batch tensors of one thread, reused once nothing refers to them any more.

    Writing a batch into fresh memory costs a page fault per 4 KiB page, more than cutting the
    patches (measured: 650 vs 1 550 patches/s on one core), so the main process (each loader thread,
    with a pool of its own) recycles its batch arrays: an array is lent (:func:`lend`) and handed out
    again only once no tensor, view or storage made from it is left, so a consumer that keeps a batch is
    never overwritten; the one returned last is lent first (its pages are the likeliest in cache). At most
    ``keep`` arrays per shape are pooled; beyond that a batch gets fresh memory. A DataLoader worker
    writes into the :class:`SharedSlots` it is given; without a free slot it gets fresh shared memory (as
    torch's default_collate allocates its output), so sending the batch copies nothing; the consumer's
    process frees it.
    """

    def __init__(self, keep: int = 8):
        self.keep = keep
        # Only the owning thread takes; an array comes back (list.append, atomic) in whichever thread drops
        # the last reference, possibly from inside a garbage collection, so no lock is held anywhere here.
        self._free: dict[tuple[int, ...], list[np.ndarray]] = {}
        self._pooled: dict[tuple[int, ...], int] = {}

    def take(self, shape: tuple[int, ...], *, recycle: bool = True) -> torch.Tensor:
        """An uninitialised float32 tensor of ``shape`` (a recycled one only with ``recycle``)."""
        if get_worker_info() is not None:
            storage = torch.empty(0)._typed_storage()._new_shared(int(np.prod(shape)))
            return torch.empty(0).new(storage).view(shape)
        if not recycle:
            return torch.empty(shape, dtype=torch.float32)
        free = self._free.setdefault(shape, [])
        try:
            array = free.pop()
        except IndexError:
            if self._pooled.get(shape, 0) >= self.keep:
                return torch.empty(shape, dtype=torch.float32)
            array = np.empty(shape, np.float32)
            self._pooled[shape] = self._pooled.get(shape, 0) + 1
        return lend(array, partial(free.append, array))


def _write_target(views: PatchViews, region: np.ndarray, out: np.ndarray) -> None:
    """``out`` = the uint16 target patch of ``region`` as float32 ``value / 65535``. Converting the
    contiguous region first and then copying the transposed view is the faster order for transposing ops."""
    if views.op[0]:
        out[...] = views.place(np.divide(region, TARGET_SCALE, dtype=np.float32))
    else:
        np.divide(views.place(region), TARGET_SCALE, out=out, dtype=np.float32)


@dataclass(frozen=True)
class SlotRequest:
    """What :class:`BatchLoader`'s sampler sends a worker: the items of one batch and the shared slot to
    write it into (``None``: no slot is free, the worker allocates fresh shared memory)."""

    items: tuple[int, ...]
    slot: int | None


SLOT_KEY = "_shared_slot"
"""Key under which a worker's batch names its slot (see :meth:`SharedSlots.fill`)."""


class SharedSlots:
    """A ring of batch tensors in shared memory that DataLoader workers write and the consumer reads in place.

    Torch's own transport gives every batch a worker makes fresh shared memory: the worker pays a page
    fault per 4 KiB page it writes and the consumer maps each batch anew, which on this project's 2-core
    test machine cost more than cutting the patches (2 workers delivered 0.38× one process). Here the
    consumer's process allocates ``count`` slots once, before the workers start (they inherit or
    unpickle them), and sends each batch's items with a free slot; the worker writes the batch there and
    sends back only the small rest (pair ids, and any tensor the slot has no place for, e.g. a target
    the example batch lacked); the consumer gets views of the slot. No batch data crosses between the
    processes and each process faults a slot's pages once. The slots are not page-locked: a copy to a GPU from them is
    staged by CUDA before ``to()`` returns, so a slot is never rewritten under an asynchronous copy.

    A slot is free when no batch for it is in flight and nothing refers to the batch handed out from it
    (no tensor, view or storage: its tensors are lent, :func:`lend`, and counted back). A consumer that
    keeps batches therefore never sees them overwritten; when
    every slot is taken the batch travels the ordinary way. With :func:`ring_slots` slots (:class:`BatchLoader`)
    a consumer that keeps at most the previous batch never runs out.
    """

    def __init__(self, example: dict[str, Any], count: int):
        """``count`` slots, each with room for every tensor of ``example`` (a batch of the largest size)."""
        self.tensors = {name: _shared_empty((count, *value.shape), value.dtype)
                        for name, value in example.items() if isinstance(value, torch.Tensor)}
        self._arrays = [{name: tensor[slot].numpy() for name, tensor in self.tensors.items()} for slot in range(count)]
        self._in_flight: set[int] = set()
        self._lent = [0] * count  # tensors of each slot the consumer still has
        # re-entrant: a lent tensor can come back from inside a garbage collection that a locked section starts
        self._lock = threading.RLock()

    def __getstate__(self) -> dict[str, Any]:  # a worker started by spawn needs only the shared tensors
        return {"tensors": self.tensors}

    def acquire(self) -> int | None:
        """A free slot, marked in flight (consumer's process), or ``None`` when every slot is taken."""
        with self._lock:
            for slot, lent in enumerate(self._lent):
                if slot not in self._in_flight and not lent:
                    self._in_flight.add(slot)
                    return slot
        return None

    def fill(self, request: SlotRequest, make_batch: Callable[..., dict[str, Any]]) -> dict[str, Any]:
        """Worker side: ``make_batch(items, out=...)`` writing into the request's slot; returns what is
        not in the slot and, under :data:`SLOT_KEY`, (slot, batch size, names written to the slot)."""
        if request.slot is None:
            return make_batch(request.items)
        n = len(request.items)
        out = {name: tensor[request.slot, :n] for name, tensor in self.tensors.items()}
        batch = make_batch(request.items, out=out)
        in_slot = []
        for name, value in batch.items():
            view = out.get(name)
            if view is None or not isinstance(value, torch.Tensor) or value.shape != view.shape:
                continue
            if value.data_ptr() != view.data_ptr():
                view.copy_(value)
            in_slot.append(name)
        rest = {name: value for name, value in batch.items() if name not in in_slot}
        return {**rest, SLOT_KEY: (request.slot, n, tuple(in_slot))}

    def receive(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Consumer side: the batch a worker sent, its slot's tensors as views of the ring."""
        if SLOT_KEY not in batch:
            return batch
        slot, n, names = batch.pop(SLOT_KEY)
        with self._lock:
            self._lent[slot] += len(names)
            self._in_flight.discard(slot)
        return {**batch, **{name: lend(self._arrays[slot][name], partial(self._returned, slot))[:n] for name in names}}

    def _returned(self, slot: int) -> None:
        with self._lock:
            self._lent[slot] -= 1


class BatchLoader:
    """The batches of ``dataset`` for ``items`` in order, ``batch_size`` at a time (the last may be
    shorter), each made whole by one :meth:`PairDataset.batch` call (no per-sample collation): in this
    process without ``workers``; else by ``workers`` DataLoader worker processes, which write patch
    batches into :class:`SharedSlots` (whole frames travel torch's ordinary way); or, with ``threads``, by
    ``workers`` threads of this process. The batches are the same every way. Iterate it like a DataLoader;
    ``loader_options`` go to the DataLoader (``prefetch_factor``, ``pin_memory``,
    ``multiprocessing_context``...; threads honour ``prefetch_factor`` and ``pin_memory``).

    Threads need no transport: numpy releases the GIL while it cuts, turns and converts a patch, which is
    most of a patch's work, and each thread writes into its own recycled buffers. On a host with few
    cores, where worker processes and the training process share them, threads deliver more (on the 2-core
    test machine, over ten runs: 2 threads 1.53–1.81× one process, 1.72–1.76× in most; 2 worker processes
    1.34–1.44×, 1.55× after the first batch); processes keep the GIL free for a training process that
    launches GPU kernels. Worker processes whose shared-memory ring does not fit :data:`SHM_DIR` become
    threads (``threads`` is then set). Measured with ``benchmarks/dataloader.py``."""

    def __init__(self, dataset: PairDataset, items: Sequence[int], batch_size: int, *, workers: int = 0,
                 threads: bool = False, **loader_options: Any):
        self.dataset, self.items, self.batch_size, self.workers = dataset, items, batch_size, workers
        self.threads = threads
        self.loader_options = loader_options

    def __len__(self) -> int:
        return -(-len(self.items) // self.batch_size)

    def _batches(self) -> BatchSampler:
        return BatchSampler(self.items, self.batch_size, drop_last=False)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self.workers and self.threads:
            yield from self._threaded()
            return
        if self.workers == 0 or self.dataset.patch is None or not len(self):
            yield from DataLoader(self.dataset, batch_size=None, sampler=self._batches(), num_workers=self.workers,
                                  **self.loader_options)
            return
        example = self.dataset.batch(next(iter(self._batches())))
        prefetch = self.loader_options.get("prefetch_factor") or 2
        count = ring_slots(self.workers, prefetch)
        ring = count * sum(v.nbytes for v in example.values() if isinstance(v, torch.Tensor))
        free = shared_memory_free()
        if free is not None and ring * SHM_MARGIN > free:
            del example
            self.threads = True  # from now on, and the trainer records it
            warnings.warn(f"{SHM_DIR} has {free / 2**20:.0f} MB free; {self.workers} loader worker processes "
                          f"need {ring * SHM_MARGIN / 2**20:.0f} MB there for their batches: using {self.workers} "
                          "threads instead (the same batches; give the machine or container more shared memory, "
                          "e.g. `docker run --shm-size 8g`, to use processes)", IspBenchWarning)
            yield from self._threaded()
            return
        slots = SharedSlots(example, count)
        del example
        requests = (SlotRequest(tuple(items), slots.acquire()) for items in self._batches())
        self.dataset.slots = slots  # before the workers start: they inherit (fork) or unpickle (spawn) it
        try:
            for batch in DataLoader(self.dataset, batch_size=None, sampler=_Requests(requests, len(self)),
                                    num_workers=self.workers, **self.loader_options):
                yield slots.receive(batch)
        finally:
            self.dataset.slots = None

    def _threaded(self) -> Iterator[dict[str, Any]]:
        """The batches made by ``workers`` threads, ``workers × prefetch_factor`` of them ahead."""
        pin = self.loader_options.get("pin_memory", False)

        def make(items: list[int]) -> dict[str, Any]:
            batch = self.dataset.batch(items)
            return {k: v.pin_memory() if pin and isinstance(v, torch.Tensor) else v for k, v in batch.items()}

        batches = iter(self._batches())
        ahead = self.workers * (self.loader_options.get("prefetch_factor") or 2)
        with ThreadPoolExecutor(self.workers, thread_name_prefix="isp-bench-loader") as pool:
            pending = deque(pool.submit(make, items) for items in islice(batches, ahead))
            try:
                while pending:
                    batch = pending.popleft().result()
                    pending.extend(pool.submit(make, items) for items in islice(batches, 1))
                    yield batch
            finally:
                for future in pending:
                    future.cancel()


SHM_DIR = "/dev/shm"
SHM_MARGIN = 1.5
"""Room asked of :data:`SHM_DIR` for the slot ring, over its size (torch's own transfers use it too)."""


def shared_memory_free() -> int | None:
    """Bytes free in :data:`SHM_DIR`, where torch's worker processes share memory (``None`` where there is
    no such folder). Writing past it kills a worker with SIGBUS, hence the check before the ring is made."""
    return shutil.disk_usage(SHM_DIR).free if os.path.isdir(SHM_DIR) else None


def ring_slots(workers: int, prefetch: int) -> int:
    """Slots of :class:`SharedSlots` for ``workers`` × ``prefetch`` batches in flight: those, the batch the
    consumer is handed, the one before it (a ``for batch in loader`` loop holds it while the next one comes) and
    one spare."""
    return workers * prefetch + 3


class _Requests:
    """A sampler over prepared requests (slots are acquired when the DataLoader asks for the next batch)."""

    def __init__(self, requests: Iterator[SlotRequest], length: int):
        self.requests, self.length = requests, length

    def __iter__(self) -> Iterator[SlotRequest]:
        return self.requests

    def __len__(self) -> int:
        return self.length


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


def _shared_empty(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised tensor in fresh shared memory (its pages are faulted by the first writer)."""
    storage = torch.UntypedStorage._new_shared(int(np.prod(shape)) * dtype.itemsize)
    return torch.empty(0, dtype=dtype).set_(storage).view(shape)
