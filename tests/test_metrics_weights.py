"""Weight files: looked up where the ecosystem looks, fetched into the torch hub cache with the
published hash checked unless offline, listed and fetched by ``isp-bench weights``.

Nothing here touches the network: the online path is exercised with ``file://`` URLs, which
torch.hub's own downloader reads like any other URL.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re

import pytest

from isp_bench.metrics import MetricWeightsError
from isp_bench.metrics.weights import WeightFile, get_weight_file, list_weight_files


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("ISP_BENCH_ALEXNET_WEIGHTS", raising=False)
    return tmp_path / "torch" / "hub" / "checkpoints"


def _cli(argv):
    from isp_bench.metrics.cli import add_commands

    parser = argparse.ArgumentParser(prog="isp-bench")
    add_commands(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def _published(tmp_path, payload=b"trained weights\n", prefix=None):
    src = tmp_path / "published.pth"
    src.write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    return WeightFile(
        name="toy", used_by="a toy metric", filename=f"toy-{digest[:8]}.pth",
        locations=lambda: [], url=src.as_uri(), sha256_prefix=prefix or digest[:8],
        how_to_get="copy it by hand",
    ), digest


@pytest.mark.parametrize("variable", ["ISP_BENCH_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_a_missing_backbone_is_one_clear_message(torch_home, monkeypatch, variable):
    from isp_bench.metrics.perceptual import alexnet_weights_path

    monkeypatch.delenv("ISP_BENCH_OFFLINE", raising=False)
    monkeypatch.setenv(variable, "1")
    with pytest.raises(MetricWeightsError) as err:
        alexnet_weights_path()
    message = str(err.value)
    assert "\n" not in message
    assert f"Offline ({variable} is set)" in message
    assert str(torch_home / "alexnet-owt-7be5be79.pth") in message
    assert "isp-bench weights --fetch lpips-alexnet" in message and "ISP_BENCH_ALEXNET_WEIGHTS" in message
    assert not torch_home.exists()  # nothing was downloaded


def test_fetch_puts_the_file_in_the_torch_hub_cache_after_checking_its_hash(torch_home, tmp_path, monkeypatch):
    monkeypatch.delenv("ISP_BENCH_OFFLINE", raising=False)
    weight, digest = _published(tmp_path)
    path = weight.fetch()
    assert path == torch_home / weight.filename
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest

    (tmp_path / "other").mkdir()
    bad, _ = _published(tmp_path / "other", payload=b"tampered weights\n", prefix="00000000")
    with pytest.raises(MetricWeightsError, match="invalid hash value"):
        bad.fetch()
    assert not (torch_home / bad.filename).exists()  # the corrupt download never lands


def test_first_use_fetches_online_and_never_offline(torch_home, tmp_path, monkeypatch):
    weight, _ = _published(tmp_path)
    monkeypatch.setenv("ISP_BENCH_OFFLINE", "1")
    with pytest.raises(MetricWeightsError, match="Offline"):
        weight.path()
    monkeypatch.delenv("ISP_BENCH_OFFLINE")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert weight.path().is_file()


def test_no_network_is_the_same_clear_message(torch_home, tmp_path, monkeypatch):
    monkeypatch.delenv("ISP_BENCH_OFFLINE", raising=False)
    weight, _ = _published(tmp_path)
    gone = WeightFile(name=weight.name, used_by=weight.used_by, filename=weight.filename,
                      locations=weight.locations, url=(tmp_path / "absent.pth").as_uri(),
                      sha256_prefix=weight.sha256_prefix, how_to_get=weight.how_to_get)
    with pytest.raises(MetricWeightsError, match=r"Fetching .* failed .* Fix: .*copy it by hand"):
        gone.path()


def test_weights_lists_every_file_with_where_it_looks_and_its_hash(torch_home, capsys):
    from isp_bench.metrics.natural_scene import BRISQUE_WEIGHTS

    torch_home.mkdir(parents=True)
    (torch_home / "alexnet-owt-7be5be79.pth").write_bytes(b"not the published file")
    assert _cli(["weights", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {w.name for w in list_weight_files()}
    assert {"lpips-alexnet", "lpips-alex-linear", "brisque-allmodel", "deepiqa-nr", "deepiqa-fr",
            "djdd-bayer"} <= set(rows)
    alex = rows["lpips-alexnet"]
    assert alex["path"] == str(torch_home / "alexnet-owt-7be5be79.pth")
    assert alex["sha256"] == hashlib.sha256(b"not the published file").hexdigest()
    assert alex["hash_ok"] is False and alex["fetchable"] is True
    assert rows["deepiqa-nr"]["fetchable"] is False  # no published hash: never downloaded
    brisque = rows["brisque-allmodel"]
    if BRISQUE_WEIGHTS.find() is not None:
        assert brisque["sha256"] == hashlib.sha256(BRISQUE_WEIGHTS.find().read_bytes()).hexdigest()

    # a file found but not the published one is "wrong", with what is wrong and the fix, not "present"
    assert alex["status"] == "wrong" and rows["lpips-alex-linear"]["status"] in ("present", "missing")
    assert alex["problem"].startswith(f"{torch_home / 'alexnet-owt-7be5be79.pth'}: wrong file for LPIPS")
    assert "SHA-256 does not match the published 'alexnet-owt-7be5be79.pth'" in alex["problem"]
    assert "`isp-bench weights --fetch lpips-alexnet` while online (it replaces this file)" in alex["problem"]

    assert _cli(["weights"]) == 0
    table = capsys.readouterr().out
    assert "DOES NOT match the published prefix 7be5be79" in table
    assert f"looks in torch hub cache: {torch_home / 'alexnet-owt-7be5be79.pth'}" in table
    assert any(line.startswith("lpips-alexnet") and line.split()[1] == "WRONG" for line in table.splitlines())
    assert f"problem: {alex['problem']}" in table


@pytest.mark.parametrize("name,expected", [
    ("lpips-alexnet", "ISP_BENCH_OFFLINE is set (offline)"),
    ("deepiqa-nr", "does not download this file"),
    ("lpips-alexnt", "Did you mean 'lpips-alexnet'"),
])
def test_weights_fetch_refusals_are_one_line(torch_home, capsys, monkeypatch, name, expected):
    monkeypatch.setenv("ISP_BENCH_OFFLINE", "1")
    assert _cli(["weights", "--fetch", name]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1
    assert get_weight_file("lpips-alexnet").find() is None


def test_an_environment_variable_naming_no_file_is_an_error_not_a_fall_through(tmp_path, monkeypatch):
    """$ISP_BENCH_ALEXNET_WEIGHTS set by the user is their choice: a typo in it must not be silently
    replaced by another copy (or a download); `weights_report` shows the problem instead of failing."""
    from isp_bench.metrics.perceptual import ALEXNET_WEIGHTS
    from isp_bench.metrics.weights import weights_report

    missing = tmp_path / "typo" / "alexnet.pth"
    monkeypatch.setenv("ISP_BENCH_ALEXNET_WEIGHTS", str(missing))
    with pytest.raises(MetricWeightsError, match=r"ISP_BENCH_ALEXNET_WEIGHTS=.*no such file"):
        ALEXNET_WEIGHTS.path()
    row = next(r for r in weights_report() if r["name"] == "lpips-alexnet")
    assert row["path"] is None and "no such file" in row["problem"]
    folder = tmp_path / "weights"  # a folder for the file: named as such, with the file in it when it is there
    (folder / "alexnet-owt-7be5be79.pth").mkdir(parents=True)  # (a folder of that name is no file either)
    monkeypatch.setenv("ISP_BENCH_ALEXNET_WEIGHTS", str(folder))
    with pytest.raises(MetricWeightsError, match=rf"^ISP_BENCH_ALEXNET_WEIGHTS={folder}: a folder, not the file "
                       r"\(LPIPS"):
        ALEXNET_WEIGHTS.path()
    (folder / "alexnet-owt-7be5be79.pth").rmdir()
    (folder / "alexnet-owt-7be5be79.pth").write_bytes(b"")
    with pytest.raises(MetricWeightsError, match=rf"{folder}: a folder, not the file "
                       rf"\({folder / 'alexnet-owt-7be5be79.pth'} is the file\)"):
        ALEXNET_WEIGHTS.path()


# ---------------------------------------------------------------- a file found but not the right one


def _wrong_files(tmp_path):
    """Real files that are not the weights: another model's state dict saved by torch, random bytes."""
    import numpy as np
    import torch

    other = tmp_path / "resnet-head.pth"
    torch.save({"fc.weight": torch.zeros(10, 4), "fc.bias": torch.zeros(10)}, other)
    noise = tmp_path / "noise.pth"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    return {"another state dict": other, "random bytes": noise}


def _score_folders(tmp_path):
    import numpy as np

    from isp_bench.images import write_png

    rng = np.random.default_rng(1)
    for folder in ("pred", "target"):
        (tmp_path / folder).mkdir()
        write_png(tmp_path / folder / "x.png", (rng.random((40, 48, 3)) * 255).astype(np.uint8))
    return tmp_path / "pred", tmp_path / "target"


def _one_line(message, path, variable):
    assert "\n" not in message and ";" not in message.split(" Fix: ")[0]  # leaderboards keep up to the first ';'
    assert message.startswith(f"{variable}={path}: wrong file for ")


def test_a_wrong_alexnet_file_named_by_the_variable_is_one_clear_line_and_lpips_is_not_scored(torch_home, tmp_path,
                                                                                            monkeypatch, capsys):
    """The variable is the user's choice, as with a typo in it (below): a wrong file there is the
    same kind of error as a missing one (lpips not scored, with the reason and the fix, the other
    metrics scored), never torch.load's traceback, never another copy or a download."""
    from isp_bench.metrics.perceptual import (
        alexnet_weights_path,
        load_lpips_model,
        lpips_distance,
    )
    from isp_bench.metrics.score import score_folders

    pred, target = _score_folders(tmp_path)
    torch_home.mkdir(parents=True)
    for kind, wrong in _wrong_files(tmp_path).items():
        monkeypatch.setenv("ISP_BENCH_ALEXNET_WEIGHTS", str(wrong))
        with pytest.raises(MetricWeightsError) as err:
            load_lpips_model()
        message = str(err.value)
        _one_line(message, wrong, "ISP_BENCH_ALEXNET_WEIGHTS")
        assert "its SHA-256 does not match the published 'alexnet-owt-7be5be79.pth'" in message, kind
        assert f"({hashlib.sha256(wrong.read_bytes()).hexdigest()[:8]}… instead of 7be5be79…)" in message
        assert message.endswith("Fix: point ISP_BENCH_ALEXNET_WEIGHTS at the published alexnet-owt-7be5be79.pth "
                                "(https://download.pytorch.org/models/alexnet-owt-7be5be79.pth), or unset it and run "
                                "`isp-bench weights --fetch lpips-alexnet` while online")
        with pytest.raises(MetricWeightsError, match="wrong file"):
            lpips_distance(np_image(), np_image())
        with pytest.raises(MetricWeightsError, match="wrong file"):  # a path passed explicitly is checked too
            alexnet_weights_path(wrong)

        df = score_folders(pred, target, metrics=["psnr", "lpips"])
        assert list(df.attrs["specs"]) == ["psnr"] and df.attrs["unavailable"] == {"lpips": message}
        assert _cli(["score", "--pred", str(pred), "--target", str(target), "--metrics", "psnr,lpips",
                     "--out", str(tmp_path / "s.parquet")]) == 1  # a metric it was asked for is missing
        out = capsys.readouterr().out
        assert out.endswith(f"not scored (1 metric):\n  lpips: {message}\n")

        assert _cli(["weights"]) == 0
        table = capsys.readouterr().out
        assert any(line.split()[:2] == ["lpips-alexnet", "WRONG"] for line in table.splitlines())
        assert f"problem: {message}" in table
    assert not any(torch_home.iterdir())  # nothing was fetched in its place


def np_image():
    import numpy as np

    return np.full((32, 32, 3), 0.5)


def test_a_file_with_the_published_hash_is_still_read_with_care(tmp_path, monkeypatch):
    """Past the hash, reading the backbone names the file and what is wrong in it: not a torch file,
    not AlexNet's tensors, not their shapes (the hash is set to each file's own here: a file that
    could only come from a corrupt or forged release)."""
    import dataclasses

    import torch

    from isp_bench.metrics import perceptual

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    files = _wrong_files(tmp_path)
    misshapen = tmp_path / "misshapen.pth"
    torch.save({f"features.{i}.{kind}": torch.zeros(3) for i in (0, 3, 6, 8, 10) for kind in ("weight", "bias")},
               misshapen)
    expected = {"random bytes": "it cannot be read as a torch state dict (",
                "another state dict": "a state dict without torchvision AlexNet's features.0.weight, "
                "features.0.bias, features.3.weight, … (10 of its 10 feature tensors missing)",
                "misshapen": "features.0.weight is (3,), torchvision AlexNet's is (64, 3, 11, 11)"}
    for kind, path in {**files, "misshapen": misshapen}.items():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        monkeypatch.setattr(perceptual, "ALEXNET_WEIGHTS",
                            dataclasses.replace(perceptual.ALEXNET_WEIGHTS, sha256_prefix=digest[:8]))
        monkeypatch.setenv("ISP_BENCH_ALEXNET_WEIGHTS", str(path))
        with pytest.raises(MetricWeightsError) as err:
            perceptual.load_lpips_model()
        message = str(err.value)
        _one_line(message, path, "ISP_BENCH_ALEXNET_WEIGHTS")
        assert expected[kind] in message, (kind, message)
        assert "isp-bench weights --fetch lpips-alexnet" in message


def test_a_wrong_file_in_the_hub_cache_is_named_and_fetching_replaces_it(torch_home, tmp_path, monkeypatch):
    monkeypatch.delenv("ISP_BENCH_OFFLINE", raising=False)
    weight, digest = _published(tmp_path)
    weight = WeightFile(name=weight.name, used_by=weight.used_by, filename=weight.filename,
                        locations=lambda: [("torch hub cache", torch_home / weight.filename)], url=weight.url,
                        sha256_prefix=weight.sha256_prefix, how_to_get=weight.how_to_get)
    torch_home.mkdir(parents=True)
    (torch_home / weight.filename).write_bytes(b"an older, different file\n")
    with pytest.raises(MetricWeightsError) as err:
        weight.path()  # found, wrong: an error, not a silent download over the user's file
    assert str(err.value).startswith(f"{torch_home / weight.filename}: wrong file for a toy metric: its SHA-256")
    assert "Fix: run `isp-bench weights --fetch toy` while online (it replaces this file), or copy it by hand" \
        in str(err.value)
    assert (torch_home / weight.filename).read_bytes() == b"an older, different file\n"
    weight.fetch()  # what the fix says does fix it
    assert weight.path() == torch_home / weight.filename
    assert hashlib.sha256(weight.path().read_bytes()).hexdigest() == digest


def test_a_wrong_deepiqa_file_is_one_clear_line_and_the_metric_is_not_scored(tmp_path, monkeypatch, capsys):
    """DeepIQA's files have no published hash: a file is checked by its layout, with the same
    outcome as for LPIPS (one line: the file, what is wrong, the fix; the metric not scored)."""
    import h5py
    import numpy as np

    from isp_bench.metrics.deepiqa import deepiqa_fr, deepiqa_nr, load_chainer_hdf5
    from isp_bench.metrics.score import score_folders
    from isp_bench.metrics.weights import weights_report

    pred, target = _score_folders(tmp_path)
    files = _wrong_files(tmp_path)
    files["an HDF5 file of another model"] = tmp_path / "keras.h5"
    with h5py.File(files["an HDF5 file of another model"], "w") as fh:
        fh.create_dataset("dense/kernel", data=np.zeros((4, 4), np.float32))
    files["a truncated model"] = tmp_path / "nr_tid_weighted.model"
    with h5py.File(files["a truncated model"], "w") as fh:
        fh.create_dataset("conv1/W", data=np.zeros((32, 3, 3, 3), np.float32))  # fc1/W: KeyError before
    files["the FR model"] = tmp_path / "fr_tid_weighted.model"
    with h5py.File(files["the FR model"], "w") as fh:
        fh.create_dataset("conv1/W", data=np.zeros((32, 3, 3, 3), np.uint8))
        fh.create_dataset("fc1/W", data=np.zeros((512, 1536), np.uint8))
    expected = {"another state dict": "not an HDF5 file", "random bytes": "not an HDF5 file",
                "an HDF5 file of another model": "an HDF5 file without a 'conv1' group",
                "a truncated model": "dataset 'fc1/W' missing",
                "the FR model": "a full-reference model (fc1 takes 1536 inputs) where a no-reference one is needed"}
    image = np.full((64, 64, 3), 0.5)
    for kind, wrong in files.items():
        monkeypatch.setenv("ISP_BENCH_DEEPIQA_NR", str(wrong))
        with pytest.raises(MetricWeightsError) as err:
            deepiqa_nr(image)
        message = str(err.value)
        _one_line(message, wrong, "ISP_BENCH_DEEPIQA_NR")
        assert expected[kind] in message, (kind, message)
        assert "Fix: point ISP_BENCH_DEEPIQA_NR at the right file: download the authors' trained Chainer models" \
            in message
        df = score_folders(pred, target, metrics=["psnr", "deepiqa_nr"])
        assert list(df.attrs["specs"]) == ["psnr"] and df.attrs["unavailable"] == {"deepiqa_nr": message}
        row = next(r for r in weights_report() if r["name"] == "deepiqa-nr")
        assert row["status"] == "wrong" and row["problem"] == message
        # a path passed explicitly: the loader says the same, naming the path
        with pytest.raises(MetricWeightsError, match=rf"^{re.escape(str(wrong))}: wrong file for DeepIQA: "
                           rf"{re.escape(expected[kind])}.*\. Fix: download the authors'"):
            load_chainer_hdf5(wrong, full_reference=False)
    monkeypatch.setenv("ISP_BENCH_DEEPIQA_FR", str(files["a truncated model"]))
    with pytest.raises(MetricWeightsError, match=r"^ISP_BENCH_DEEPIQA_FR=.*dataset 'fc1/W' missing"):
        deepiqa_fr(image, image)


def test_a_wrong_brisque_model_is_one_clear_line(tmp_path, monkeypatch):
    import numpy as np

    from isp_bench.metrics.natural_scene import brisque

    files = _wrong_files(tmp_path)
    files["a text file"] = tmp_path / "notes.txt"
    files["a text file"].write_text("svm_type c_svc\nkernel_type linear\n" + "x " * 5000 + "\n")
    for kind, wrong in files.items():
        monkeypatch.setenv("ISP_BENCH_BRISQUE_MODEL", str(wrong))
        with pytest.raises(MetricWeightsError) as err:
            brisque(np.full((64, 64, 3), 0.5))
        message = str(err.value)
        _one_line(message, wrong, "ISP_BENCH_BRISQUE_MODEL")
        assert "x x" not in message  # not the file's content
        assert "Fix: point ISP_BENCH_BRISQUE_MODEL at the right file: " in message
        assert ("cannot be read as a libsvm model" if kind != "a text file"
                else "not a libsvm epsilon_svr model with an rbf kernel (svm_type 'c_svc'") in message, kind
