"""Full-resolution tiled inference: stitched tiles equal untiled inference; global branches see the whole frame."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from isp_bench.evaluate import batch_from_capture, infer_full, tiled_map
from isp_bench.models import create_model, example_batch, model_card
from isp_bench.raw import RawCapture

torch.set_num_threads(1)
warnings.filterwarnings("ignore", message=".*Matplotlib.*")


def test_tiled_map_local_ops_exact():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 45, 61)
    w = torch.rand(5, 3, 5, 5)
    conv = lambda t: F.conv2d(F.pad(t, (2, 2, 2, 2), mode="replicate"), w)  # noqa: E731
    torch.testing.assert_close(tiled_map(conv, x, tile=16, overlap=2), conv(x), atol=1e-5, rtol=0)
    up = lambda t: F.interpolate(t, scale_factor=2, mode="nearest")  # noqa: E731
    torch.testing.assert_close(tiled_map(up, x, scale=2, tile=16, overlap=0), up(x))
    pool = lambda t: F.max_pool2d(t, 4, ceil_mode=True)  # noqa: E731
    torch.testing.assert_close(tiled_map(pool, x, scale=0.25, tile=16, overlap=0, align=4), pool(x))


def _batch(name, h, w, seed=0):
    batch = example_batch(model_card(name), (h, w), seed=seed)
    return batch


def test_deepisp_tiled_equals_untiled():
    # low-level receptive field: 15 px; the global pass is tiled too (stride-4 feature map)
    model = create_model("deepisp").eval()
    with torch.no_grad():
        # give W a non-trivial value so the global branch matters
        model.fc.weight.normal_(std=0.05)
        batch = _batch("deepisp", 70, 90)
        full = model(batch)
        g_tiled = model.compute_global(batch, tiler=lambda fn, x, scale, align: tiled_map(fn, x, scale=scale, align=align, tile=24, overlap=28))
    torch.testing.assert_close(g_tiled["deepisp_w"], model.compute_global(batch)["deepisp_w"], atol=1e-5, rtol=0)
    tiled = infer_full(model, batch, tile=24, overlap=28)
    assert tiled.shape == full.shape
    torch.testing.assert_close(tiled, full, atol=1e-5, rtol=0)


def test_deepisp_renders_a_frame_from_one_low_level_pass_as_two_passes_would():
    """render_frame (the low-level stage once, its image and first high-level block stitched at two scales)
    gives exactly what the global pass followed by tile-by-tile rendering gives in float32 (in bf16 on a GPU the
    whole-frame colour transform rounds differently: 0.004 at most on an H200), in half the work."""
    model = create_model("deepisp").eval()
    with torch.no_grad():
        model.fc.weight.normal_(std=0.05)
    batch = _batch("deepisp", 70, 90)
    calls = []
    original = model.low_level.forward

    def counting(rgb):
        calls.append(rgb.shape[-2] * rgb.shape[-1])
        return original(rgb)

    model.low_level.forward = counting
    once = infer_full(model, batch, tile=24, overlap=28)
    pixels_once = sum(calls)
    model.render_frame = lambda batch, tiler: None  # the generic path: compute_global, then every tile
    twice = infer_full(model, batch, tile=24, overlap=28)
    assert torch.equal(once, twice) and sum(calls) == 3 * pixels_once


@pytest.mark.parametrize("shape", [(1, 3, 37, 50), (2, 3, 5, 7), (1, 3, 2, 2)])
def test_deepisp_low_level_inference_in_padded_buffers_equals_the_training_path(shape):
    """Without autograd the low-level stage writes each layer's input into one reflection-padded buffer instead
    of padding and concatenating copies (2.1× faster for a 1024×768 frame on 2 CPU cores, channels-last):
    the same bits, in float32 and bf16 autocast, in either memory layout."""
    model = create_model("deepisp-lowlevel")
    torch.manual_seed(0)
    for layer in model.low_level.layers:
        torch.nn.init.normal_(layer.conv.weight, std=0.05)  # non-zero residual channels
    x = torch.rand(*shape)
    for layout in (torch.contiguous_format, torch.channels_last):
        model = model.to(memory_format=layout)
        for dtype in (None, torch.bfloat16):
            with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
                trained = model.low_level(x.contiguous(memory_format=layout))  # autograd on: the training path
                with torch.no_grad():
                    inferred = model.low_level(x.contiguous(memory_format=layout))
            assert all(torch.equal(a, b) for a, b in zip(trained, inferred)), (layout, dtype)
            assert inferred[0].dtype == (dtype or torch.float32) and inferred[1].dtype == torch.float32


def test_tiled_map_stitches_several_outputs_at_their_scales():
    x = torch.rand(1, 3, 40, 56)
    both = tiled_map(lambda t: (t * 2, F.avg_pool2d(t, 4)), x, scale=(1.0, 0.25), tile=16, overlap=8, align=4,
                     tile_batch=3)
    assert torch.equal(both[0], x * 2)
    torch.testing.assert_close(both[1], F.avg_pool2d(x, 4), atol=1e-6, rtol=0)


@pytest.mark.parametrize("name,overlap", [("classic", 8), ("djdd", 80)])
def test_pipelines_tiled_equal_untiled(name, overlap):
    model = create_model(name, demosaic="bilinear") if name == "classic" else create_model(name)
    model.eval()
    batch = _batch(name, 100, 132)
    with torch.no_grad():
        full = model(batch)
    tiled = infer_full(model, batch, tile=48, overlap=overlap)
    # 2e-5: tiles go through the model several at a time, and a batched convolution rounds differently
    torch.testing.assert_close(tiled, full, atol=2e-5, rtol=0)


def test_crispnet_tiles_see_whole_frame_global():
    model = create_model("crispnet").eval()
    batch = _batch("crispnet", 64, 96)
    del batch["thumb"]  # infer_full must build it from the whole frame, not per tile
    seen = []
    original = model.render

    def spy(b):
        seen.append(b["global"]["crispnet_scale"].clone())
        return original(b)

    model.render = spy
    out = infer_full(model, batch, tile=32, overlap=16)
    model.render = original
    with torch.no_grad():
        expected = model.compute_global(batch)["crispnet_scale"]
        untiled = model(batch)
    # 6 tiles, batched tile_batch at a time: every tile's global input is the whole frame's
    assert sum(len(s) for s in seen) == 6 and all(torch.equal(row[None], expected) for s in seen for row in s)
    assert out.shape == untiled.shape == (1, 3, 64, 96)
    # one tile covering the frame is exactly the untiled result
    torch.testing.assert_close(infer_full(model, batch, tile=128, overlap=0), untiled, atol=1e-5, rtol=0)


def test_cameranet_global_from_tiles():
    model = create_model("cameranet").eval()
    batch = _batch("cameranet", 64, 64)
    with torch.no_grad():
        untiled = model(batch)
        g = model.compute_global(batch)["cameranet_global"]
        g_big = model.compute_global(batch, tiler=lambda fn, x, scale, align: tiled_map(fn, x, scale=scale, align=align, tile=64, overlap=0))
    torch.testing.assert_close(g_big["cameranet_global"], g, atol=1e-5, rtol=0)
    torch.testing.assert_close(infer_full(model, batch, tile=64, overlap=0), untiled, atol=1e-5, rtol=0)
    tiled = infer_full(model, batch, tile=32, overlap=32)
    assert tiled.shape == untiled.shape and torch.isfinite(tiled).all()


def test_cameranet_renders_a_frame_with_one_restore_net_pass():
    """render_frame stitches Restore-Net's output from one tiled pass (the generic path runs it for the global
    pass and again per tile), and Enhance-Net's tiles then see it computed with the frame's context, not
    cut at the tile: half the Restore-Net work and closer to untiled inference; one tile is untiled inference."""
    model = create_model("cameranet").eval()
    batch = _batch("cameranet", 128, 192)
    pixels = []
    original = model.restore_net.forward

    def counting(x, *args):
        pixels.append(x.shape[0] * x.shape[-2] * x.shape[-1])
        return original(x, *args)

    model.restore_net.forward = counting
    with torch.no_grad():
        untiled = model(batch)
    torch.testing.assert_close(infer_full(model, batch, tile=256, overlap=0), untiled, atol=1e-6, rtol=0)
    pixels.clear()
    once = infer_full(model, batch, tile=64, overlap=32)
    pixels_once = sum(pixels)
    model.render_frame = lambda batch, tiler: None  # the generic path: compute_global, then every tile
    twice = infer_full(model, batch, tile=64, overlap=32)
    assert sum(pixels) == 3 * pixels_once
    assert (once - untiled).abs().mean() < (twice - untiled).abs().mean()


def test_batch_from_capture_and_infer_on_capture():
    rng = np.random.default_rng(1)
    cap = RawCapture(mosaic=rng.integers(0, 4095, size=(41, 57)).astype(np.uint16), cfa="BGGR",
                     black_level=(128, 128, 128, 128), white_level=4095, wb_as_shot=(2.0, 1.0, 1.6),
                     color_matrix=((0.5, 0.4, 0.1), (0.2, 0.7, 0.1), (0.0, 0.1, 0.9)), iso=800, exposure_s=0.01,
                     noise_profile=(1e-4, 1e-6))
    batch, crop = batch_from_capture(cap, rgb=True)
    assert (crop.top, crop.left, crop.height, crop.width) == (1, 1, 40, 56)
    assert batch["raw"].shape == (1, 4, 20, 28) and batch["rgb"].shape == (1, 3, 40, 56)
    torch.testing.assert_close(batch["wb"], torch.tensor([[2.0, 1.0, 1.0, 1.6]]))
    assert float(batch["iso"]) == 800 and batch["noise"].shape == (1, 2)
    out = infer_full(create_model("deepisp"), cap, tile=16, overlap=16)
    assert out.shape == (1, 3, 40, 56)
    bare = RawCapture(mosaic=cap.mosaic, cfa="BGGR", black_level=(128,) * 4, white_level=4095)
    assert "wb" not in batch_from_capture(bare)[0]
    from isp_bench.evaluate.tiled import InferenceError

    with pytest.raises(InferenceError, match="wb"):
        batch_from_capture(bare, require_color=True)
