"""Weight files: looked up where the ecosystem looks, fetched into the torch hub cache with the
published hash checked unless offline, listed and fetched by ``isp-bench weights``.

Nothing here touches the network: the online path is exercised with ``file://`` URLs, which
torch.hub's own downloader reads like any other URL.
"""

from __future__ import annotations

import argparse
import hashlib
import json

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

    assert _cli(["weights"]) == 0
    table = capsys.readouterr().out
    assert "DOES NOT match the published prefix 7be5be79" in table
    assert f"looks in torch hub cache: {torch_home / 'alexnet-owt-7be5be79.pth'}" in table


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
