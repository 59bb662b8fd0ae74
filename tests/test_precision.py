"""Mixed precision: what --precision resolves to, bf16 training of every trainable model on the CPU,
precision in the run id and the record, and 16-bit tiled inference against fp32."""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch

from isp_bench.devices import DeviceError, resolve_precision
from isp_bench.evaluate import infer_full
from isp_bench.ingest import ingest
from isp_bench.models import create_model, list_models
from isp_bench.runs import run_benchmark
from isp_bench.synth import SynthConfig, generate
from isp_bench.train.recipe import config_hash, list_recipes, resolve_recipe
from isp_bench.train.trainer import train


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    base = tmp_path_factory.mktemp("precision")
    root = generate(base / "synth", SynthConfig(scenes=8, height=96, width=128), workers=1, progress=False)
    manifest = ingest("synth", root, base / "synth.parquet", workers=1, progress=False).manifest
    return {"root": root, "manifest": manifest}


def _trainable_recipes() -> list[str]:
    """One recipe per registered model that trains: its default recipe, else its first with stages."""
    chosen = []
    for model in list_models(include_reported_only=False):
        with_stages = [r for r in list_recipes(model) if resolve_recipe(r, budget="smoke")["stages"]]
        if with_stages:
            chosen.append(model if model in with_stages else with_stages[0])
    return chosen


TRAINABLE = _trainable_recipes()


def test_precision_resolves_per_device():
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision(" BF16 ", "cpu") == "bf16"
    with pytest.raises(DeviceError, match="unknown precision 'fp8'.*fp32, bf16, fp16"):
        resolve_precision("fp8", "cpu")
    if torch.cuda.is_available():
        expected = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        assert resolve_precision("auto", "cuda:0") == expected


def test_16_bit_precision_on_a_cpu_without_its_instructions_warns_that_it_is_emulated(monkeypatch):
    import isp_bench.devices as devices

    flags = devices.cpu_float16_flags()
    assert flags is None or flags <= {"amx_bf16", "amx_fp16", "avx512_bf16", "avx512_fp16"}  # this machine's
    monkeypatch.setattr(devices, "cpu_float16_flags", lambda: set())
    with pytest.warns(UserWarning, match="precision bf16 on this CPU .* is emulated"):
        assert resolve_precision("bf16", "cpu") == "bf16"
    monkeypatch.setattr(devices, "cpu_float16_flags", lambda: {"amx_bf16"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_precision("bf16", "cpu") == "bf16" and resolve_precision("fp32", "cpu") == "fp32"


def test_every_trainable_model_is_covered():
    assert {"unet", "crispnet", "cameranet", "deepisp"} <= {resolve_recipe(r)["model"] for r in TRAINABLE}


@pytest.mark.parametrize("recipe", TRAINABLE)
def test_bf16_autocast_trains_every_model_on_the_cpu(data, tmp_path, recipe):
    config = resolve_recipe(recipe, budget="smoke", precision="bf16")
    torch.manual_seed(0)
    model = create_model(config["model"])
    record = train(model, config, data["manifest"], data["root"], tmp_path, device="cpu", progress=False)
    assert record["precision"] == "bf16" and len(record["losses"]) == record["steps"] > 0
    assert all(math.isfinite(loss) for loss in record["losses"])
    assert all(math.isfinite(p["psnr"]) for p in record["validation_psnr"])
    # weights stay fp32 under autocast, and the last step's gradients are finite
    assert all(p.dtype == torch.float32 for p in model.parameters())
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


class _Perfect(torch.nn.Module):
    """A "model" whose every output is the truth it is scored against, in bf16 as autocast leaves outputs."""

    def forward(self, batch):
        return batch["target"].to(torch.bfloat16)

    def restore(self, raw):
        return self.linear.to(torch.bfloat16)

    def enhance(self, linear):
        return self.target.to(torch.bfloat16)


@pytest.mark.parametrize("name, args", [("srgb_mse", {}), ("srgb_l1", {}), ("restoration_mse", {"target": "target"}),
                                        ("deepisp_lab_msssim", {"alpha": 0.5}), ("cameranet_restore", {}),
                                        ("cameranet_enhance", {}), ("cameranet_joint", {"lambda": 0.5})])
def test_a_perfect_16_bit_output_has_no_loss_under_autocast(name, args):
    """Losses are computed in float32 outside autocast: under bf16 autocast DeepISP's Lab + MS-SSIM loss gave
    a perfect output 0.41 (Lab ℓ1 of a bf16 output against a float32 target, the matrix product in bf16)."""
    from isp_bench.train.losses import get_objective

    rng = torch.Generator().manual_seed(0)
    target, linear = (torch.rand(2, 3, 48, 48, generator=rng).to(torch.bfloat16).float() for _ in range(2))
    model = _Perfect()
    model.linear, model.target = linear, target
    batch = {"raw": torch.rand(2, 4, 24, 24), "target": target, "linear_target": linear}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = get_objective(name)(model, batch, **args)
    assert loss.dtype == torch.float32 and abs(float(loss)) < 1e-6


def test_precision_is_part_of_the_run_id_and_recorded(data, tmp_path):
    fp32 = resolve_recipe("unet", budget="smoke")
    bf16 = resolve_recipe("unet", budget="smoke", precision="bf16")
    assert fp32["precision"] == "fp32" and config_hash(fp32) != config_hash(bf16)
    # fp32 hashes as before precision was recorded: committed runs keep their ids
    assert config_hash(fp32) == config_hash({k: v for k, v in fp32.items() if k != "precision"})
    run_dir = run_benchmark("unet", budget="smoke", precision="bf16", device="cpu", runs_dir=tmp_path,
                            manifest=data["manifest"].path, root=data["root"], metrics=("psnr",), progress=False)
    result = json.loads((run_dir / "result.json").read_text())
    assert result["config"]["precision"] == "bf16" and result["provenance"]["precision"] == "bf16"
    assert result["provenance"]["processes"] == 1
    assert result["training"]["distributed"] == {"world_size": 1, "per_rank_batch": [1]}
    assert run_dir.name.endswith(config_hash({**bf16, "manifest_content_hash": data["manifest"].content_hash}))
    assert math.isfinite(result["metrics"]["psnr"]["mean"])


@pytest.mark.parametrize("name", ["unet", "deepisp", "cameranet"])
def test_bf16_tiled_inference_is_close_to_fp32_and_tile_batches_agree(name):
    torch.manual_seed(0)
    model = create_model(name)
    batch = {"raw": torch.rand(1, 4, 48, 64), "wb": torch.tensor([[2.0, 1.0, 1.0, 1.5]]),
             "color_matrix": torch.eye(3)[None]}
    one = infer_full(model, batch, tile=32, overlap=32, tile_batch=1)
    many = infer_full(model, batch, tile=32, overlap=32, tile_batch=5)
    torch.testing.assert_close(many, one, atol=1e-5, rtol=0)
    # bf16 on a smaller frame: on a CPU without native bf16 (AVX2) DeepISP's bf16 convolutions are ~75x slower than
    # fp32 (the frame above took 75 s in 12 tiles, 26 s in one), which made this the suite's slowest test
    small = {**batch, "raw": batch["raw"][..., :16, :24]}
    low = infer_full(model, small, tile=16, overlap=8, precision="bf16")
    full = infer_full(model, small, tile=16, overlap=8)
    assert low.dtype == torch.float32 and low.shape == full.shape == (1, 3, 32, 48)
    assert (low - full).abs().mean() < 0.02  # bf16 keeps 8 bits of mantissa: about 1/256 per operation
