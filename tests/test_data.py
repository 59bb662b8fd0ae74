"""The loader: CFA-exact patches cut as views, whole batches in one call, the batch leaf module, and a
data stage that imports no model."""

from __future__ import annotations

import ast
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from isp_bench.batches import NEUTRAL_METADATA, frame_batch, metadata_tensors
from isp_bench.data import DIHEDRAL, BatchLoader, PairDataset, patch_views
from isp_bench.data.augment import pattern_after
from isp_bench.data.cache import CacheError, cache_folder, classic_linear_target
from isp_bench.errors import IspBenchError
from isp_bench.ingest import ingest
from isp_bench.raw import RawCapture, pack_rggb, unpack_rggb
from isp_bench.synth import SynthConfig, generate

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    base = tmp_path_factory.mktemp("loader")
    root = generate(base / "synth", SynthConfig(scenes=8, height=96, width=128), workers=1, progress=False)
    manifest = ingest("synth", root, base / "synth.parquet", workers=1, progress=False).manifest.path
    return {"root": root, "manifest": manifest, "cache": base / "cache"}


def test_the_cache_folder_is_the_one_given_else_the_environments_else_in_the_root(tmp_path, monkeypatch):
    monkeypatch.delenv("ISP_BENCH_CACHE", raising=False)
    assert cache_folder(tmp_path / "root") == tmp_path / "root" / ".isp-bench-cache"
    monkeypatch.setenv("ISP_BENCH_CACHE", str(tmp_path / "shared-cache"))
    assert cache_folder(tmp_path / "root") == tmp_path / "shared-cache"
    assert cache_folder(tmp_path / "root", tmp_path / "given") == tmp_path / "given"


def test_an_unwritable_cache_folder_is_one_error_naming_the_fix_and_a_built_one_is_only_read(data, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    unwritable = [blocker / "cache"]  # a file where a folder must go: fails for root too
    if os.geteuid() != 0:  # a read-only folder (root may write anyway)
        unwritable.append(tmp_path / "read-only" / "cache")
        unwritable[-1].parent.mkdir()
        unwritable[-1].parent.chmod(0o555)
    for folder in unwritable:
        with pytest.raises(CacheError) as error:
            PairDataset(data["manifest"], data["root"], "test", cache_dir=folder, progress=False)
        message = str(error.value)
        assert message.startswith(f"{folder}: cannot write the preprocessing cache there")
        assert "--cache-dir DIR or ISP_BENCH_CACHE=DIR" in message and f"pair(s) of {data['root']}" in message
    built = PairDataset(data["manifest"], data["root"], "test", cache_dir=data["cache"], progress=False)
    before = {p.name: p.stat().st_mtime_ns for p in data["cache"].iterdir()}
    again = PairDataset(data["manifest"], data["root"], "test", cache_dir=data["cache"], progress=False)
    assert torch.equal(again[0]["raw"], built[0]["raw"])
    assert {p.name: p.stat().st_mtime_ns for p in data["cache"].iterdir()} == before  # nothing written


def test_a_file_changed_since_ingest_is_refused_and_never_cached(data, tmp_path):
    """Found by a new user: a target edited after ingest was cached under the manifest's hashes and scored (PSNR
    30.3 instead of 36.9), and the wrong entry stayed after the file was restored."""
    import shutil

    from isp_bench.manifest import read_manifest

    root = shutil.copytree(data["root"], tmp_path / "synth")
    row = next(r for r in read_manifest(data["manifest"]).rows() if r["split"] == "test")
    target = root / row["target_path"]
    original = target.read_bytes()
    target.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))  # same size, one bit changed
    with pytest.raises(CacheError) as error:
        PairDataset(data["manifest"], root, "test", cache_dir=tmp_path / "cache", progress=False)
    message = str(error.value)
    assert message.startswith(f"pair {row['pair_id']}: {target} is not the file the manifest recorded (target_path: "
                              f"sha256 ") and f"recorded {row['target_sha256'][:12]}" in message
    assert "isp-bench manifest validate" in message
    assert not list((tmp_path / "cache").glob("*.json"))  # no entry for it
    target.write_bytes(original + b"\0")  # another size: said without hashing
    with pytest.raises(CacheError, match=f"target_path: {len(original) + 1} bytes, recorded {len(original)}"):
        PairDataset(data["manifest"], root, "test", cache_dir=tmp_path / "cache", progress=False)
    target.write_bytes(original)  # restored: cached from the recorded bytes
    restored = PairDataset(data["manifest"], root, "test", cache_dir=tmp_path / "cache", progress=False)
    reference = PairDataset(data["manifest"], data["root"], "test", cache_dir=data["cache"], progress=False)
    assert torch.equal(restored[0]["target"], reference[0]["target"])


def test_a_split_without_pairs_is_an_error_listing_the_splits(data):
    from collections import Counter

    from isp_bench.manifest import read_manifest

    splits = Counter(r["split"] for r in read_manifest(data["manifest"]).rows())
    listed = ", ".join(f"{name} ({n} pairs)" for name, n in sorted(splits.items()))
    assert "test" in splits and "val" in splits
    with pytest.raises(IspBenchError, match=rf"no pairs for split='Test' .*; its splits: {re.escape(listed)}$"):
        PairDataset(data["manifest"], data["root"], "Test", cache_dir=data["cache"], progress=False)


def _pixel_level_patch(raw, targets, top, left, size, op):
    """The definition: unpack the region, apply the op to mosaic and targets, crop the phase to RGGB, pack."""
    from isp_bench.data.augment import apply_op

    ph, pw = size
    rh, rw = (pw + 2, ph + 2) if op[0] else (ph + 2, pw + 2)
    mosaic = apply_op(unpack_rggb(raw[:, top // 2 : (top + rh) // 2, left // 2 : (left + rw) // 2]), op)
    dy, dx = {"RGGB": (0, 0), "GRBG": (0, 1), "GBRG": (1, 0), "BGGR": (1, 1)}[pattern_after(op, (rh, rw))]
    packed, _ = pack_rggb(mosaic[dy : dy + ph, dx : dx + pw], "RGGB")
    return packed, [apply_op(t[:, top : top + rh, left : left + rw], op)[:, dy : dy + ph, dx : dx + pw] for t in targets]


def test_patches_cut_as_views_equal_the_pixel_level_definition():
    rng = np.random.default_rng(7)
    for _ in range(40):
        h, w = 2 * rng.integers(5, 16, size=2)
        raw = rng.random((4, h, w)).astype(np.float32)
        targets = [rng.integers(0, 65536, (3, 2 * h, 2 * w)).astype(np.uint16), rng.random((3, 2 * h, 2 * w))]
        size = tuple(int(v) for v in 2 * rng.integers(1, 5, size=2))
        for op in DIHEDRAL:
            rh, rw = (size[1] + 2, size[0] + 2) if op[0] else (size[0] + 2, size[1] + 2)
            top, left = 2 * rng.integers(0, (2 * h - rh) // 2 + 1), 2 * rng.integers(0, (2 * w - rw) // 2 + 1)
            expected_raw, expected_targets = _pixel_level_patch(raw, targets, top, left, size, op)
            got_raw, got_targets = patch_views(raw, targets, top, left, size, op).copies()
            assert np.array_equal(got_raw, expected_raw) and got_raw.flags.c_contiguous, op
            for got, expected in zip(got_targets, expected_targets):
                assert got.dtype == expected.dtype and np.array_equal(got, expected), op


def test_a_batch_is_its_samples_stacked(data):
    ds = PairDataset(data["manifest"], data["root"], "train", cache_dir=data["cache"], patch=(32, 48), augment=True,
                     inputs=("raw", "rgb", "thumb"), samples_per_epoch=64, seed=11, progress=False)
    ds.set_epoch(3)
    items = [5, 0, 17, 40, 63, 22, 9, 31]
    batch, collated = ds[items], default_collate([ds[i] for i in items])
    assert sorted(batch) == sorted(collated)
    assert batch["pair_id"] == collated["pair_id"]
    for key, value in collated.items():
        if isinstance(value, torch.Tensor):
            assert value.dtype == batch[key].dtype and torch.equal(batch[key], value), key
    assert batch["raw"].shape == (8, 4, 16, 24) and batch["target"].shape == (8, 3, 32, 48)
    # every item a pure function of (seed, epoch, item), whichever batch it is asked in
    assert torch.equal(ds[[17]]["raw"][0], batch["raw"][2]) and torch.equal(ds[40]["target"], batch["target"][3])


def test_illuminant_gains_recolour_the_raw_and_the_white_balance_undoes_them(data):
    kwargs = dict(cache_dir=data["cache"], patch=(32, 48), augment=True, inputs=("raw", "rgb", "thumb"),
                  samples_per_epoch=64, seed=11, progress=False)
    plain = PairDataset(data["manifest"], data["root"], "train", **kwargs)
    lit = PairDataset(data["manifest"], data["root"], "train", illuminant_gains=(0.67, 1.5), **kwargs)
    items = list(range(64))
    a, b = plain[items], lit[items]
    gains = a["wb"] / b["wb"]  # the white balance is divided by the gains
    assert torch.equal(gains[:, 1:3], torch.ones(64, 2))
    assert 0.67 <= gains.min() and gains.max() <= 1.5 and gains[:, [0, 3]].std() > 0.1  # spread over the range
    assert torch.allclose(b["raw"], (a["raw"] * gains[:, :, None, None]).clamp(max=1), rtol=1e-6)
    balanced, balanced_before = b["raw"] * b["wb"][:, :, None, None], a["raw"] * a["wb"][:, :, None, None]
    assert (balanced - balanced_before)[b["raw"] < 1].abs().max() < 1e-5  # white-balanced, unclipped: unchanged
    assert torch.allclose(b["thumb"], (a["thumb"] * gains[:, [0, 1, 3], None, None]).clamp(max=1), rtol=1e-6)
    assert torch.allclose(b["rgb"][:, 1], a["rgb"][:, 1]) and not torch.allclose(b["rgb"][:, 0], a["rgb"][:, 0])
    assert torch.equal(b["target"], a["target"])  # the scene, hence its rendering, is the same
    assert torch.equal(lit[[5, 9]]["wb"], b["wb"][[5, 9]])  # a pure function of (seed, epoch, item)
    with pytest.raises(IspBenchError, match="0 < lo <= 1 <= hi"):
        PairDataset(data["manifest"], data["root"], "train", illuminant_gains=(1.2, 1.5), **kwargs)


def test_batch_loader_gives_the_same_batches_with_worker_processes_or_threads(data):
    ds = PairDataset(data["manifest"], data["root"], "train", cache_dir=data["cache"], patch=(32, 32), augment=True,
                     samples_per_epoch=40, seed=2, progress=False)
    ds[0]  # entries opened in the parent are not pickled nor shared by the workers' own state
    items = range(6, 30)
    direct = [ds[list(items[i : i + 5])] for i in range(0, len(items), 5)]
    for workers, threads in ((0, False), (2, False), (2, True), (3, True)):
        got = list(BatchLoader(ds, items, 5, workers=workers, threads=threads))  # every batch kept: none overwritten
        assert [b["raw"].shape[0] for b in got] == [5, 5, 5, 5, 4]
        for a, b in zip(got, direct):
            assert a["pair_id"] == b["pair_id"]
            assert all(torch.equal(a[k], b[k]) for k in b if isinstance(b[k], torch.Tensor))


def _same_batches(got, direct):
    assert len(got) == len(direct)
    for a, b in zip(got, direct):
        assert a["pair_id"] == b["pair_id"] and sorted(a) == sorted(b)
        assert all(torch.equal(a[k], b[k]) for k in b if isinstance(b[k], torch.Tensor))


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_worker_batches_come_through_shared_slots_and_kept_ones_are_never_overwritten(data, context):
    ds = PairDataset(data["manifest"], data["root"], "train", cache_dir=data["cache"], patch=(32, 32), augment=True,
                     inputs=("raw", "thumb"), samples_per_epoch=60, seed=3, progress=False)
    items = range(40)
    direct = [ds[list(items[i : i + 2])] for i in range(0, len(items), 2)]  # 20 batches, more than the 7 slots
    loader = BatchLoader(ds, items, 2, workers=2, multiprocessing_context=context)
    kept = list(loader)  # every batch kept: the slots run out and later batches travel in fresh memory
    _same_batches(kept, direct)
    assert len({b["raw"].untyped_storage().data_ptr() for b in kept}) == len(kept)
    dropped, places = [], set()
    for batch in loader:  # each batch dropped before the next: the same few slots serve them all
        dropped.append({k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in batch.items()})
        places.add(batch["raw"].untyped_storage().data_ptr())
        del batch
    _same_batches(dropped, direct)
    assert len(places) <= 2 * 2 + 3  # workers × prefetch + 3 slots
    assert ds.slots is None  # the ring lives only while its workers do


def test_batch_buffers_lend_an_array_again_only_once_nothing_made_from_it_is_left():
    from isp_bench.data.dataset import BatchBuffers

    buffers = BatchBuffers(keep=2)
    first = buffers.take((2, 3))
    row, address = first[0], first.data_ptr()
    del first  # a view of it is still held
    second = buffers.take((2, 3))
    assert second.data_ptr() != address
    del row  # the last thing made from the first array: it is returned, and lent next
    third = buffers.take((2, 3))
    assert third.data_ptr() == address
    fourth = buffers.take((2, 3))  # both pooled arrays are lent: fresh memory, not a lent array
    assert fourth.data_ptr() not in (second.data_ptr(), third.data_ptr())
    storage = third.untyped_storage()
    del third
    assert buffers.take((2, 3)).data_ptr() not in (address, second.data_ptr())  # a storage holds it too
    del storage
    assert buffers.take((2, 3)).data_ptr() == address


def test_batches_freed_by_the_garbage_collector_inside_the_loader_do_not_deadlock_it():
    """A batch caught in a reference cycle comes back when a collection runs, which can be inside take() or
    acquire() (any allocation may start one): returning it must not wait for a lock that section holds."""
    import gc
    import threading

    from isp_bench.data.dataset import SLOT_KEY, BatchBuffers, SharedSlots

    buffers, slots = BatchBuffers(keep=2), SharedSlots({"raw": torch.zeros(2, 3)}, count=2)

    def churn():
        for _ in range(1000):
            cycle = {"tensor": buffers.take((2, 3))}
            cycle["self"] = cycle  # freed only by a collection
            slot = slots.acquire()
            if slot is not None:
                cycle = {"batch": slots.receive({SLOT_KEY: (slot, 2, ("raw",))})}
                cycle["self"] = cycle

    threshold = gc.get_threshold()
    gc.set_threshold(1)  # a collection at nearly every allocation
    try:
        worker = threading.Thread(target=churn, daemon=True)
        worker.start()
        worker.join(60)
    finally:
        gc.set_threshold(*threshold)
    assert not worker.is_alive(), "the loader's buffers deadlocked"


def test_worker_processes_without_room_in_shared_memory_become_threads(data, monkeypatch):
    """A container's default 64 MB /dev/shm would end worker processes in a bus error: the loader warns
    and makes the same batches with threads."""
    from isp_bench.data import dataset as dataset_module

    ds = PairDataset(data["manifest"], data["root"], "train", cache_dir=data["cache"], patch=(32, 32), augment=True,
                     samples_per_epoch=20, seed=4, progress=False)
    items = range(20)
    direct = [ds[list(items[i : i + 4])] for i in range(0, len(items), 4)]
    monkeypatch.setattr(dataset_module, "shared_memory_free", lambda: 64 * 1024)
    loader = BatchLoader(ds, items, 4, workers=2)
    with pytest.warns(UserWarning, match=r"loader worker processes need \d+ MB there .* using 2 threads instead"):
        got = list(loader)
    _same_batches(got, direct)
    assert ds.slots is None and loader.threads  # what the trainer records


def test_a_pickled_dataset_carries_no_open_cache_entries(data):
    ds = PairDataset(data["manifest"], data["root"], "train", cache_dir=data["cache"], patch=(32, 32),
                     inputs=("raw", "thumb"), samples_per_epoch=8, progress=False)
    sample = ds[3]
    assert ds._entries and ds._thumbs
    copy = pickle.loads(pickle.dumps(ds))
    assert not copy._entries and not copy._thumbs
    assert torch.equal(copy[3]["raw"], sample["raw"]) and torch.equal(copy[3]["thumb"], sample["thumb"])


def test_metadata_has_one_policy_for_rows_and_captures():
    meta = {"wb_as_shot": (2.0, 1.0, 1.5), "color_matrix": ((0.5, 0.4, 0.1), (0.2, 0.7, 0.1), (0.0, 0.1, 0.9)),
            "iso": 800, "exposure_s": 0.01, "noise_profile": (1e-4, 1e-6, 2e-4, 2e-6)}
    capture = RawCapture(mosaic=np.zeros((8, 8), np.uint16), cfa="RGGB", black_level=(0,) * 4, white_level=255, **meta)
    row = {**meta, "color_matrix": np.ravel(meta["color_matrix"]).tolist()}  # manifests store the matrix flat
    from_row, from_capture = metadata_tensors(row), metadata_tensors(capture)
    assert sorted(from_row) == sorted(from_capture) == ["color_matrix", "exposure_s", "iso", "noise", "wb"]
    assert all(torch.equal(from_row[k], from_capture[k]) for k in from_row)
    assert from_row["wb"].tolist() == [2.0, 1.0, 1.0, 1.5]
    assert from_row["noise"].tolist() == pytest.approx([1e-4, 1e-6])
    # missing metadata: left out, or the documented neutral values when frames must stack
    bare = RawCapture(mosaic=np.zeros((8, 8), np.uint16), cfa="RGGB", black_level=(0,) * 4, white_level=255)
    assert metadata_tensors(bare) == {} and metadata_tensors({"iso": None, "noise_profile": []}) == {}
    filled = metadata_tensors(bare, fill_missing=True)
    assert sorted(filled) == sorted(from_row) and all(torch.equal(filled[k], metadata_tensors(
        {"iso": None}, fill_missing=True)[k]) for k in filled)
    assert torch.equal(filled["color_matrix"], torch.tensor(NEUTRAL_METADATA["color_matrix"], dtype=torch.float32))
    assert filled["iso"] == filled["exposure_s"] == 0 and filled["wb"].tolist() == [1.0] * 4
    assert filled["noise"].tolist() == [0.0, 0.0]


def test_every_batch_builder_uses_the_leaf_module(data):
    from isp_bench.evaluate import batch_from_capture
    from isp_bench.models import example_batch, model_card
    from isp_bench.models.flops import EXAMPLE_METADATA

    example = example_batch(model_card("crispnet"), (32, 32), batch_size=2)
    for key, value in metadata_tensors(EXAMPLE_METADATA, fill_missing=True).items():
        assert torch.equal(example[key], value.expand(2, *value.shape)), key
    capture = RawCapture(mosaic=np.arange(64, dtype=np.uint16).reshape(8, 8), cfa="GRBG", black_level=(1,) * 4,
                         white_level=70, wb_as_shot=(1.5, 1.0, 2.0), iso=100)
    batch, _ = batch_from_capture(capture, rgb=True)
    packed, _ = capture.packed()
    expected = frame_batch(packed, capture, rgb=True)
    assert sorted(batch) == sorted(expected) and all(torch.equal(batch[k], expected[k]) for k in batch)
    ds = PairDataset(data["manifest"], data["root"], "test", cache_dir=data["cache"], progress=False)
    sample = ds[0]
    for key, value in metadata_tensors(ds.rows[0], fill_missing=True).items():
        assert torch.equal(sample[key], value), key


def test_derived_linear_targets_are_the_classic_models_rendering(data):
    from isp_bench.models import create_model
    from isp_bench.colorimetry import srgb_decode_torch

    ds = PairDataset(data["manifest"], data["root"], "test", cache_dir=data["cache"], progress=False)
    row = ds.rows[0]
    packed = np.asarray(ds.cache.load(row).raw)
    with torch.no_grad():
        rendered = srgb_decode_torch(create_model("classic").eval()(frame_batch(packed, row, fill_missing=True)), clamp=True)[0]
    assert np.array_equal(classic_linear_target(packed, row), np.round(rendered.numpy() * 65535.0).astype(np.uint16))


DATA_STAGE = sorted((REPO / "isp_bench/data").rglob("*.py")) + [REPO / "isp_bench/batches.py",
                                                                  REPO / "isp_bench/develop.py"]


@pytest.mark.parametrize("path", DATA_STAGE, ids=lambda p: str(p.relative_to(REPO)))
def test_the_data_stage_imports_no_model(path):
    tree = ast.parse(path.read_text())
    imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    imported += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert not [m for m in imported if m.startswith("isp_bench.models")]


def test_importing_the_data_stage_loads_no_model_module():
    code = ("import sys, isp_bench.data.dataset, isp_bench.data.cache, isp_bench.batches, isp_bench.develop; "
            "print([m for m in sys.modules if m.startswith('isp_bench.models')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_a_recycled_batch_buffer_never_overwrites_a_batch_still_in_use(data):
    ds = PairDataset(data["manifest"], data["root"], "train", cache_dir=data["cache"], patch=(32, 32), augment=True,
                     samples_per_epoch=64, progress=False)
    kept, view, copy = ds[[0, 1]], ds[[2, 3]]["raw"][1:], ds[[4, 5]]["target"].numpy()
    expected = [ds[[0, 1]]["raw"].clone(), ds[[2, 3]]["raw"][1:].clone(), ds[[4, 5]]["target"].numpy().copy()]
    for start in range(6, 60, 2):  # many batches, buffers recycled behind them
        ds[[start, start + 1]]
    assert torch.equal(kept["raw"], expected[0]) and torch.equal(view, expected[1]) and np.array_equal(copy, expected[2])
    first = ds[[0, 1]]["raw"].data_ptr()
    assert ds[[0, 1]]["raw"].data_ptr() == first  # a released buffer is reused


# ----------------------------------------------------------------------------- targets that cover part of the raw


def _cfa_coded_dng(path: Path, *, default_crop) -> Path:
    """An RGGB DNG whose every photosite holds its colour's code (R 100, G 200, B 300 above black 64), 34×50, with
    an odd-origin DefaultCrop: a packed crop in the wrong CFA phase mixes the codes."""
    from isp_bench.raw import write_dng

    code = np.array([[100, 200], [200, 300]], np.uint16)
    mosaic = np.tile(code, (17, 25)) + 64
    return write_dng(path, mosaic, cfa="RGGB", black_level=64, white_level=1023, wb_as_shot=(2.0, 1.0, 1.6),
                     color_matrix=np.eye(3), iso=100, exposure_s=0.01, fnumber=2.0, make="Test", model="Cam",
                     default_crop=default_crop)


def test_a_target_of_the_default_crop_area_is_laid_on_that_area_of_the_raw(tmp_path):
    """A renderer that applies the DNG DefaultCrop (Lightroom's FiveK exports, HDR+'s final.jpg) gives a target of
    the crop's size: the cache packs that area of the mosaic, in the CFA phase its origin gives (odd here), and a
    prediction in the target file's geometry lands on the cached target (cache_geometry)."""
    from isp_bench.data.cache import PreprocessCache, cache_geometry
    from isp_bench.images import read_image, write_png

    root = tmp_path / "mine"
    _cfa_coded_dng(root / "shot.dng", default_crop=(1, 3, 30, 44))
    target = np.random.default_rng(0).integers(0, 65535, (30, 44, 3)).astype(np.uint16)
    write_png(root / "shot.png", target)
    row = {**ingest("pairs", root, tmp_path / "m.parquet", workers=1, progress=False).manifest.rows()[0],
           "target_path": "shot.png"}  # a lossless target (pairs pairs a raw with its JPEG)
    cache = PreprocessCache(root, tmp_path / "cache")
    cache.build_row(row)
    entry = cache.load(row)
    codes = entry.raw * (1023 - 64)
    assert [np.unique(np.round(c)).tolist() for c in codes] == [[100.0], [200.0], [200.0], [300.0]]  # R, Gr, Gb, B
    # origin (1, 3) is a GB row: RGGB phase starts one row and one column further, and 28 × 42 whole tiles remain
    assert entry.raw.shape == (4, 14, 21) and np.array_equal(entry.target, target[1:29, 1:43].transpose(2, 0, 1))
    assert np.array_equal(cache_geometry(read_image(root / "shot.png"), row).transpose(2, 0, 1), entry.target)


def test_a_target_of_another_size_is_a_clear_error(tmp_path):
    from isp_bench.data.cache import PreprocessCache
    from isp_bench.images import write_png

    root = tmp_path / "mine"
    _cfa_coded_dng(root / "shot.dng", default_crop=(1, 3, 30, 44))
    write_png(root / "shot.png", np.zeros((20, 30, 3), np.uint16))
    row = {**ingest("pairs", root, tmp_path / "m.parquet", workers=1, progress=False).manifest.rows()[0],
           "target_path": "shot.png"}
    with pytest.raises(CacheError, match=r"its target is 30×20 but the raw is 50×34 \(DefaultCrop 44×30\)"):
        PreprocessCache(root, tmp_path / "cache").build_row(row)
