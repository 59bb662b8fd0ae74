"""Model zoo: registry, exact parameter counts, MACs at 4032×3024, forward contract, training step."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from isp_bench.errors import UnknownNameError
from isp_bench.models import (
    ModelError,
    ReportedOnlyError,
    count_params,
    create_model,
    example_batch,
    list_models,
    model_card,
)
from isp_bench.raw import RawCapture

torch.set_num_threads(1)
warnings.filterwarnings("ignore", message=".*Matplotlib.*")

RUNNABLE = list_models(include_reported_only=False)
LEARNED = [n for n in RUNNABLE if n != "classic"]


# ---------------------------------------------------------------- registry

def test_list_models_wildcards():
    assert list_models("crispnet*") == ["crispnet", "crispnet-noglobal", "crispnet-nowb"]
    assert list_models("CRISPnet") == ["crispnet"]  # as the paper spells it (no match before)
    assert "cameranet" in list_models("*net*") and "deepisp" not in list_models("*net*")
    assert set(RUNNABLE) >= {"deepisp", "cameranet", "crispnet", "classic", "unet", "djdd", "pynet",
                             "crispnet-nowb", "crispnet-noglobal", "unet-resbottleneck"}
    assert "deepcamera" in list_models() and "deepcamera" not in RUNNABLE


def test_unknown_model_lists_near_misses():
    with pytest.raises(UnknownNameError) as err:
        create_model("camranet")
    assert "'cameranet'" in str(err.value) and "camranet" in str(err.value)
    with pytest.raises(KeyError):
        model_card("crisp-net")


def test_reported_only_and_bad_override():
    with pytest.raises(ReportedOnlyError, match="no public code"):
        create_model("deepcamera")
    card = model_card("deepcamera", measure=True)
    assert card.reported.params == 467_000 and card.reported.gflops == 4460.35 and card.params is None
    with pytest.raises(ModelError, match="n_ll"):
        create_model("cameranet", n_ll=3)
    assert create_model("deepisp", n_ll=4).card.config["n_ll"] == 4


def test_card_fields():
    card = model_card("cameranet", measure=True)
    d = card.to_dict()
    for key in ("name", "paper", "input_kind", "metadata", "params", "macs_4032x3024", "reported", "notes"):
        assert key in d
    assert model_card("deepisp").input_kind == "bilinear_rgb"
    assert model_card("crispnet").metadata == ("wb", "thumb")
    assert model_card("classic").metadata == ("wb", "color_matrix")
    assert any("1.58 M parameters and 26.1 GFLOPs" in n for n in card.notes)  # the gap to Table IV is written down


# ---------------------------------------------------------------- exact parameter counts

def conv(cin, cout, k=3, bias=True):
    return cin * cout * k * k + (cout if bias else 0)


def cameranet_unet_params(cin, cout, global_hidden=None):
    ch = [32, 64, 128, 256, 512]
    n = 0
    prev = cin
    for c in ch:  # entry + two block convs per level, bottleneck included
        n += conv(prev, c) + 2 * conv(c, c)
        prev = c
    for i in reversed(range(4)):  # bias-free 2×2 transposed conv, then entry on the concat + block
        n += ch[i + 1] * ch[i] * 4 + conv(2 * ch[i], ch[i]) + 2 * conv(ch[i], ch[i])
    n += conv(32, cout, 1)
    if global_hidden:
        n += 512 * global_hidden + global_hidden + global_hidden * 1024 + 1024
    return n


def test_deepisp_params_match_issue():
    expected = conv(3, 64) + 14 * conv(64, 64) + 3 * conv(64, 64) + 64 * 30 + 30
    assert expected == 631_518
    assert count_params(create_model("deepisp")) == expected
    assert round(expected / 1e6, 4) == 0.6315  # issue; paper says 0.629 M (see card notes)
    assert count_params(create_model("deepisp-lowlevel")) == conv(3, 64) + 19 * conv(64, 64)


def test_cameranet_params_released_config():
    expected = cameranet_unet_params(4, 12) + cameranet_unet_params(12, 12, global_hidden=1024)
    assert count_params(create_model("cameranet")) == expected == 24_952_728
    assert round(expected / 1e6, 2) == 24.95
    card = model_card("cameranet")
    assert card.reported.params - expected == pytest.approx(1.58e6, abs=0.01e6)
    assert count_params(create_model("unet")) == cameranet_unet_params(4, 12) == 11_687_756


def test_pynet_params():
    n = count_params(create_model("pynet"))
    assert n == 47_551_666
    assert n / 47.5e6 == pytest.approx(1.0, abs=0.0015)  # paper: 47.5 M


def test_djdd_params_equal_shipped_weights():
    from isp_bench.models.djdd import shipped_weights_path

    state = torch.load(shipped_weights_path(), weights_only=True)
    assert count_params(create_model("djdd")) == sum(v.numel() for v in state.values()) == 560_886


def test_crispnet_family_params():
    from timm.models.xcit import Xcit

    xcit = count_params(Xcit(img_size=(368, 480), num_classes=0, embed_dim=192, depth=4, num_heads=4,
                             eta=1.0, tokens_norm=True))
    ch = [32, 64, 128, 256, 512]
    unet = 0
    prev = 4
    for c in ch:
        unet += conv(prev, c) + conv(c, c)
        prev = c
    unet += 4 * 2 * conv(512, 512)  # residual bottleneck
    for i in reversed(range(4)):
        unet += conv(ch[i + 1], ch[i], 2) + conv(2 * ch[i], ch[i]) + conv(ch[i], ch[i])
    unet += conv(32, 12, 1)
    wb = (4 * 32 + 32) + (32 * 64 + 64) + (64 * 128 + 128)
    glob = xcit + conv(192, 512, 1)
    assert count_params(create_model("unet-resbottleneck")) == unet
    assert count_params(create_model("crispnet-noglobal")) == unet + wb
    assert count_params(create_model("crispnet-nowb")) == unet + glob
    assert count_params(create_model("crispnet")) == unet + wb + glob == 29_671_476
    assert count_params(create_model("classic")) == 0


# ---------------------------------------------------------------- MACs at 4032×3024 (meta device)

def test_deepisp_macs_match_issue():
    macs = model_card("deepisp", measure=True).macs_4032x3024
    assert macs == pytest.approx(6.43e12, rel=0.01)
    assert 2 * macs == pytest.approx(12_869.79e9, rel=0.01)  # paper GFLOPs


def test_cameranet_macs_match_released_code():
    macs = model_card("cameranet", measure=True).macs_4032x3024
    assert 2 * macs == pytest.approx(3.28e12, rel=0.01)
    assert 2 * macs == pytest.approx(model_card("cameranet").reported.gflops * 1e9, rel=0.02)


def test_mac_counter_hand_checked():
    from torch import nn

    from isp_bench.models.flops import count_macs

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 8, 3, padding=1)
            self.t = nn.ConvTranspose2d(8, 4, 2, stride=2)
            self.l = nn.Linear(4, 5)

        def forward(self, batch):
            return self.l(self.t(self.c(batch["x"])).mean(dim=(2, 3)))

    rep = count_macs(Tiny().to("meta"), {"x": torch.empty(2, 3, 10, 12, device="meta")})
    assert rep.by_type == {"Conv2d": 2 * 8 * 10 * 12 * 27, "ConvTranspose2d": 2 * 8 * 10 * 12 * 4 * 4,
                           "Linear": 2 * 5 * 4}


def test_all_cards_measure():
    for name in RUNNABLE:
        card = model_card(name, measure=True)
        assert card.params is not None and card.macs_4032x3024 is not None
    assert model_card("classic").macs_4032x3024 == 0


# ---------------------------------------------------------------- forward contract

def _capture(cfa: str, h: int, w: int, seed: int = 0) -> RawCapture:
    rng = np.random.default_rng(seed)
    mosaic = rng.integers(64, 1023, size=(h, w)).astype(np.uint16)
    return RawCapture(mosaic=mosaic, cfa=cfa, black_level=(64, 64, 64, 64), white_level=1023,
                      wb_as_shot=(2.0, 1.0, 1.5),
                      color_matrix=((0.6, 0.3, 0.1), (0.25, 0.7, 0.05), (0.05, 0.1, 0.9)))


def _batch_for(name, capture):
    from isp_bench.evaluate import batch_from_capture

    card = model_card(name)
    batch, crop = batch_from_capture(capture, rgb=card.input_kind == "bilinear_rgb")
    return batch, crop


@pytest.mark.parametrize("name", RUNNABLE)
def test_forward_shape_odd_size(name):
    model = create_model(name).eval()
    capture = _capture("GBRG", 37, 51)  # odd mosaic, half-resolution 18×25
    batch, crop = _batch_for(name, capture)
    with torch.no_grad():
        out = model(batch)
    assert out.shape == (1, 3, crop.height, crop.width) == (1, 3, 36, 50)
    assert out.dtype == torch.float32 and float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("cfa", ["RGGB", "GRBG", "GBRG", "BGGR"])
@pytest.mark.parametrize("name", ["deepisp", "unet", "classic"])
def test_forward_every_cfa_phase(name, cfa):
    model = create_model(name).eval()
    batch, crop = _batch_for(name, _capture(cfa, 23, 30))
    with torch.no_grad():
        out = model(batch)
    assert out.shape[-2:] == (crop.height, crop.width)


def test_missing_metadata_is_a_clear_error():
    model = create_model("crispnet-noglobal").eval()
    batch = example_batch(model_card("crispnet-noglobal"), (32, 32))
    del batch["wb"]
    with pytest.raises(ModelError, match="wb"):
        model(batch)
    with pytest.raises(ModelError, match="rgb"):
        create_model("deepisp")({"raw": torch.zeros(1, 4, 8, 8)})


def test_crispnet_thumb_is_whole_frame_and_used():
    model = create_model("crispnet").eval()
    batch = example_batch(model_card("crispnet"), (32, 48))
    with torch.no_grad():
        a = model({**batch, "thumb": torch.zeros_like(batch["thumb"])})
        b = model({**batch, "thumb": torch.linspace(0, 1, 480).expand_as(batch["thumb"]).contiguous()})
    assert (a - b).abs().max() > 1e-4
    from isp_bench.models.crispnet import THUMB_HW, make_thumb

    assert make_thumb(torch.rand(1, 4, 1512, 2016)).shape == (1, 3, *THUMB_HW)


# ---------------------------------------------------------------- training step on CPU

@pytest.mark.parametrize("name", LEARNED)
def test_training_step(name):
    torch.manual_seed(0)
    model = create_model(name, pretrained=False) if name == "djdd" else create_model(name)
    model.train()
    size = 32  # PyNET's coarsest level is then one pixel, which its instance norm takes only once widened
    batch = example_batch(model_card(name), (size, size), batch_size=2)
    target = torch.rand(2, 3, size, size)
    params = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    opt = torch.optim.Adam(params, lr=1e-3)
    loss = torch.nn.functional.l1_loss(model(batch), target)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    changed = sum(not torch.equal(a, p.detach()) for a, p in zip(before, params))
    assert changed > 0.5 * len(params)


# ---------------------------------------------------------------- classic and djdd

def test_srgb_curve_matches_colour():
    import colour

    from isp_bench.colorimetry import srgb_decode_torch, srgb_encode_torch

    x = np.linspace(0, 1, 101)
    np.testing.assert_allclose(srgb_encode_torch(torch.from_numpy(x)).numpy(), colour.cctf_encoding(x, "sRGB"), atol=1e-12)
    np.testing.assert_allclose(srgb_decode_torch(torch.from_numpy(x), clamp=True).numpy(), colour.cctf_decoding(x, "sRGB"), atol=1e-12)


def test_classic_renders_grey_card_neutral():
    from isp_bench.models.classic import render_capture

    # a grey card under a reddish light: raw R is twice G, B two thirds of it; as-shot WB undoes it
    h, w = 16, 20
    mosaic = np.zeros((h, w), np.uint16)
    level = {0: 64 + 400, 1: 64 + 200, 2: 64 + 200, 3: 64 + 133}
    for (dy, dx), k in zip(((0, 0), (0, 1), (1, 0), (1, 1)), range(4)):
        mosaic[dy::2, dx::2] = level[k]
    cap = RawCapture(mosaic=mosaic, cfa="RGGB", black_level=(64,) * 4, white_level=1023,
                     wb_as_shot=(0.5, 1.0, 1.5), color_matrix=((0.41, 0.36, 0.18), (0.21, 0.72, 0.07), (0.02, 0.12, 0.95)))
    for demosaic in ("bilinear", "malvar"):
        out, crop = render_capture(cap, demosaic)
        assert out.shape == (h, w, 3) and crop.height == h
        centre = out[4:-4, 4:-4].reshape(-1, 3)
        np.testing.assert_allclose(centre, centre[:, 1:2].repeat(3, 1), atol=3e-3)


def _psnr(a, b):
    return 10 * np.log10(1.0 / np.mean((a - b) ** 2))


def test_djdd_shipped_weights_beat_bilinear_on_real_photo():
    from skimage import data

    from isp_bench.models.djdd import djdd_demosaic
    from isp_bench.raw import cfa_masks, demosaic_bilinear

    img = data.astronaut()[96:352, 128:384].astype(np.float32) / 255.0  # 256×256 crop of a real photograph
    mosaic = (img * cfa_masks(img.shape[:2], "RGGB")).sum(axis=-1).astype(np.float32)
    ours = djdd_demosaic(torch.from_numpy(mosaic)).permute(1, 2, 0).numpy()
    bilinear = demosaic_bilinear(mosaic, "RGGB")
    inner = np.s_[8:-8, 8:-8]
    p_djdd, p_bil = _psnr(ours[inner].clip(0, 1), img[inner]), _psnr(bilinear[inner], img[inner])
    assert p_djdd > p_bil + 5.0, (p_djdd, p_bil)
    assert p_djdd > 33.0


def test_djdd_missing_weights_is_clear():
    with pytest.raises(ModelError, match="bayer.pth"):
        create_model("djdd", weights="/nonexistent/bayer.pth")


@pytest.mark.parametrize("pads", [1, 2, 8, (2, 3, 0, 1), (0, 0, 2, 2), (1, 0, 0, 3)])
def test_reflection_padding_keeps_a_channels_last_layout_and_equals_torch_reflection(pads):
    """Channels-last tensors (CUDA training) are copied once into a padded tensor whose borders are mirrored in
    place: the same values and gradients as F.pad(mode="reflect"), and the layout kept for the convolution
    after it."""
    from isp_bench.models._common import reflect_pad

    torch.manual_seed(0)
    x = torch.rand(2, 8, 9, 11).contiguous(memory_format=torch.channels_last).requires_grad_()
    reference = x.detach().contiguous().requires_grad_()
    padded = reflect_pad(x, pads)
    assert padded.grad_fn is not None
    expected = torch.nn.functional.pad(reference, (pads,) * 4 if isinstance(pads, int) else pads, mode="reflect")
    assert torch.equal(padded, expected) and padded.is_contiguous(memory_format=torch.channels_last)
    weights = torch.rand_like(expected)
    (padded * weights).sum().backward()
    (expected * weights).sum().backward()
    # float32 rounding: a pixel mirrored by wide pads sums several weights in another order than F.pad's
    assert torch.allclose(x.grad, reference.grad, rtol=1e-6, atol=1e-6)


def test_same_max_pooling_without_a_padded_copy_equals_padding_with_minus_infinity():
    """max_pool_same(3, 2) pools with the layer's own padding and ceil mode instead of copying the input into a
    -inf-padded tensor: the same values and gradients (ties included: integer inputs) for every size and layout."""
    import torch.nn.functional as F

    from isp_bench.models._common import max_pool_same

    def padded(x):  # TensorFlow SAME: ceil(n / 2) outputs, the odd pixel of padding at the bottom/right
        pads = [p for n in (x.shape[-1], x.shape[-2]) for p in ((n % 2), 1)]
        return F.max_pool2d(F.pad(x, pads, value=float("-inf")), 3, 2)

    torch.manual_seed(0)
    for h in range(2, 12):
        for w in range(2, 12):
            for layout in (torch.contiguous_format, torch.channels_last):
                x = torch.randint(0, 4, (2, 3, h, w)).float().contiguous(memory_format=layout).requires_grad_(True)
                y = x.detach().clone().requires_grad_(True)
                a, b = max_pool_same(x), padded(y)
                assert a.shape[-2:] == (-(-h // 2), -(-w // 2)) and torch.equal(a, b), (h, w)
                grad = torch.randn_like(a)
                (a * grad).sum().backward()
                (b * grad).sum().backward()
                assert torch.equal(x.grad, y.grad), (h, w, layout)


@pytest.mark.parametrize("name", ["cameranet", "deepisp", "crispnet", "pynet"])
def test_a_channels_last_training_step_equals_the_default_layout(name):
    """CUDA trains channels-last (reflection padding then takes its own path, forward and backward): in float64
    the loss and every gradient equal the default layout's to rounding, for a batch of one too (where torch's
    CPU batch- and instance-norm backward went wrong for CRISPnet's XCiT and PyNET: see the next test). Float64,
    as PyNET's instance norms over 2×2 pixels amplify float32 rounding beyond any useful tolerance."""
    from isp_bench.models import example_batch, model_card

    torch.manual_seed(0)
    model = create_model(name).double()
    batch = {k: v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v
             for k, v in example_batch(model_card(name), (64, 64), seed=0).items()}
    found = []
    for layout in (torch.contiguous_format, torch.channels_last):
        model = model.to(memory_format=layout)
        model.zero_grad()
        inputs = {k: v.contiguous(memory_format=layout) if isinstance(v, torch.Tensor) and v.ndim == 4 else v
                  for k, v in batch.items()}
        loss = model(inputs).square().mean()
        loss.backward()
        found.append((loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    (loss_a, grads_a), (loss_b, grads_b) = found
    assert len(grads_a) == len(grads_b) > 0
    torch.testing.assert_close(loss_a, loss_b, rtol=1e-12, atol=0)
    scale = max(g.abs().max().item() for g in grads_a)  # gradients that are zero in theory (a bias before a
    for a, b in zip(grads_a, grads_b):                   # norm) are rounding noise at ~1e-18
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-10 * scale)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_normalisation_gradients_of_a_batch_of_one_match_finite_differences(layout):
    """torch 2.14's CPU batch-norm backward (under CRISPnet's XCiT patch embedding, fed back through a
    transposed token view) and instance-norm backward (PyNET, channels-last) return wrong gradients for a
    batch of one; the models make those incoming gradients dense. Float64 directional derivatives of both
    against central finite differences."""
    from isp_bench.models.pynet import _ConvLayer

    torch.manual_seed(0)
    crispnet = create_model("crispnet").double().to(memory_format=layout)
    layer = _ConvLayer(4, 8, 3, norm=True).double().to(memory_format=layout)
    torch.nn.init.normal_(layer.norm.weight)
    cases = [(crispnet.global_branch, torch.rand(1, 3, 368, 480, dtype=torch.float64), (1, 512)),
             (layer, torch.rand(1, 4, 12, 13, dtype=torch.float64), (1, 8, 12, 13))]
    for module, x, out_shape in cases:
        x = x.contiguous(memory_format=layout)
        drawn = torch.rand(out_shape, dtype=torch.float64)
        # the gradient coming back in either layout (what follows the module decides it)
        for weights in [drawn] + ([drawn.contiguous(memory_format=torch.channels_last)] if drawn.ndim == 4 else []):

            def loss(t):
                return (module(t) * weights).sum()

            leaf = x.clone().requires_grad_(True)
            loss(leaf).backward()
            direction = torch.randn_like(x)
            with torch.no_grad():
                numeric = (loss(x + 1e-6 * direction) - loss(x - 1e-6 * direction)) / 2e-6
            analytic = (leaf.grad * direction).sum()
            assert analytic.item() == pytest.approx(numeric.item(), rel=1e-5, abs=1e-7), type(module).__name__
