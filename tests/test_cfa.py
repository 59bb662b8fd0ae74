"""CFA packing, normalisation and bilinear demosaicing."""

from __future__ import annotations

import numpy as np
import pytest

from isp_bench.raw import CfaError, cfa_masks, demosaic_bilinear, normalize, pack_rggb, shift_cfa, unpack_rggb

PATTERNS = ["RGGB", "GRBG", "GBRG", "BGGR"]


def coded_mosaic(cfa: str, shape=(7, 9)) -> np.ndarray:
    """A mosaic whose value says which colour site it is: R=1, G on R rows=2, G on B rows=3, B=4."""
    masks = cfa_masks(shape, cfa)
    rows = np.arange(shape[0])[:, None]
    red_rows = masks[..., 0].any(axis=1)[:, None]
    code = masks[..., 0] * 1 + masks[..., 2] * 4 + masks[..., 1] * np.where(red_rows, 2, 3)
    return code + 0 * rows


@pytest.mark.parametrize("cfa", PATTERNS)
def test_pack_shifts_every_phase_to_r_gr_gb_b(cfa):
    mosaic = coded_mosaic(cfa)
    packed, crop = pack_rggb(mosaic, cfa)
    assert [np.unique(packed[c]).tolist() for c in range(4)] == [[1], [2], [3], [4]]
    assert crop.height % 2 == 0 and crop.width % 2 == 0
    assert shift_cfa(cfa, crop.top, crop.left) == "RGGB"
    assert np.array_equal(unpack_rggb(packed), crop.apply(mosaic))


def test_unpack_is_the_inverse_of_pack_with_batch_dims():
    packed = np.random.default_rng(0).random((2, 4, 3, 5)).astype(np.float32)
    mosaic = unpack_rggb(packed)
    assert mosaic.shape == (2, 6, 10)
    assert np.array_equal(pack_rggb(mosaic[1], "RGGB")[0], packed[1])


def test_normalize_per_position_black_levels():
    mosaic = np.array([[100, 200], [300, 1000]], np.uint16)
    out = normalize(mosaic, (100, 0, 200, 0), 1100)
    assert out.dtype == np.float32
    assert np.allclose(out, [[0.0, 200 / 1100], [100 / 900, 1000 / 1100]])
    assert normalize(np.array([[50]], np.uint16), 100, 1100)[0, 0] < 0  # not clipped by default
    assert normalize(np.array([[50]], np.uint16), 100, 1100, clip=True)[0, 0] == 0


def test_bad_cfa_and_levels_are_clear_errors():
    with pytest.raises(CfaError, match="XTRANS"):
        pack_rggb(np.zeros((6, 6)), "XTRANS")
    with pytest.raises(CfaError, match="white level"):
        normalize(np.zeros((2, 2)), 64, 64)


@pytest.mark.parametrize("cfa", PATTERNS)
def test_bilinear_demosaic_is_exact_on_constant_and_linear_images(cfa):
    h, w = 12, 16
    colours = np.array([0.2, 0.5, 0.8])
    flat = (cfa_masks((h, w), cfa) * colours).sum(-1)
    assert np.allclose(demosaic_bilinear(flat, cfa), colours, atol=1e-6)  # borders included
    ramp = np.add.outer(np.arange(h) * 0.01, np.arange(w) * 0.02)
    out = demosaic_bilinear(ramp, cfa)
    assert np.allclose(out[1:-1, 1:-1], ramp[1:-1, 1:-1, None], atol=1e-6)  # bilinear reproduces planes
    masks = cfa_masks((h, w), cfa)
    assert np.array_equal(out[masks], np.repeat(ramp[..., None], 3, -1)[masks].astype(np.float32))


def test_the_torch_bilinear_demosaic_equals_the_numpy_one():
    """What a GPU frame is demosaiced with (``bilinear_rgb`` off the CPU) against demosaic_bilinear itself."""
    import torch

    from isp_bench.batches import bilinear_rgb, bilinear_rgb_torch

    raw = torch.from_numpy(np.random.default_rng(3).random((2, 4, 13, 22), dtype=np.float32))
    reference, got = bilinear_rgb(raw), bilinear_rgb_torch(raw)
    assert got.shape == reference.shape == (2, 3, 26, 44)
    assert torch.allclose(got, reference, rtol=0, atol=1e-6)  # borders included
    mosaic = torch.from_numpy(unpack_rggb(raw.numpy()))
    assert torch.equal(got[:, 0, 0::2, 0::2], mosaic[:, 0::2, 0::2])  # measured samples kept exactly
    assert torch.equal(got[:, 1, 0::2, 1::2], mosaic[:, 0::2, 1::2])
    assert torch.equal(got[:, 2, 1::2, 1::2], mosaic[:, 1::2, 1::2])
