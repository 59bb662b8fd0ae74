"""The command line: the README's main command, the committed embedded-default manifest, and first contact
(fast --help, documented options, devices, bad arguments refused before anything is written)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from isp_bench.cli import build_parser, main
from isp_bench.devices import DeviceError, available_devices, cpu_name, describe_device, resolve_device
from isp_bench.ingest import ingest
from isp_bench.manifest import read_manifest, write_manifest
from isp_bench.provenance import environment
from isp_bench.synth import SynthConfig, generate

REPO = Path(__file__).resolve().parents[1]


def test_demo_generates_ingests_and_validates(tmp_path, capsys):
    manifest = tmp_path / "manifests" / "synth.parquet"
    code = main(["demo", "--work", str(tmp_path / "work"), "--manifest", str(manifest), "--scenes", "3",
                 "--workers", "1"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "checked 12 files: 0 missing, 0 changed" in out
    assert len(read_manifest(manifest)) == 6


def test_synth_and_datasets_commands(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path / "s"), "--scenes", "2", "--height", "48", "--width", "64",
                 "--workers", "1"]) == 0
    assert sorted(p.name for p in (tmp_path / "s").iterdir())[:2] == ["0000_monitor_astronaut", "0001_real_astronaut"]
    assert main(["datasets"]) == 0
    assert "synth" in capsys.readouterr().out


def test_committed_default_manifest_is_reproducible(tmp_path):
    """manifests/synth.parquet is what `isp-bench demo` makes: every byte of every DNG, JPEG and
    PNG (issue 15 item 5: the JPEG/PNG hashes were skipped, and a clone on another machine wrote
    other JPEG bytes), so the content hash, the run ids and the tracked files stay unchanged."""
    committed = read_manifest(REPO / "manifests" / "synth.parquet")
    root = generate(tmp_path / "synth", SynthConfig(), progress=False)
    fresh = ingest("synth", root, tmp_path / "synth.parquet", progress=False).manifest
    assert fresh.rows() == committed.rows()
    assert fresh.content_hash == committed.content_hash


# ----------------------------------------------------------------------------- first contact (issue 15 items 9, 12, 13)

HEAVY_MODULES = ("torch", "numpy", "pandas", "pyarrow", "rawpy", "matplotlib", "datasets", "cv2", "scipy", "PIL")


def test_building_the_parser_imports_no_heavy_module():
    """`isp-bench --help` builds every subcommand's parser; none of that may import numpy, torch, pyarrow…"""
    code = ("import sys; from isp_bench.cli import build_parser; build_parser(); "
            f"print(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def _walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ("isp-bench",)):
    """(command path, action) for every action of every (sub)parser."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, (*path, name))
        else:
            yield path, action


def test_every_option_says_what_it_does_and_its_default():
    undocumented = []
    actions = list(_walk(build_parser()))
    for path, action in actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        name = f"{' '.join(path)} {'/'.join(action.option_strings) or action.dest}"
        text = (action.help or "") % {**vars(action), "prog": path[-1]}
        has_default = not action.required and (action.option_strings or action.nargs in ("?", "*"))
        if not text.strip():
            undocumented.append(f"{name}: no help")
        elif has_default and "default" not in text:
            undocumented.append(f"{name}: default {action.default!r} not stated")
        elif has_default and action.default not in (None, False) and str(action.default) not in text:
            undocumented.append(f"{name}: says a default other than {action.default!r}")
    assert not undocumented, "\n".join(undocumented)
    commands = {path[1] for path, _ in actions if len(path) > 1}
    assert {"demo", "synth", "run", "train", "evaluate", "manifest", "score", "models", "publish", "capture",
            "qa"} <= commands  # the walk reached every command module


def test_every_process_count_option_refuses_less_than_one_process(capsys):
    """--workers and --nproc of every command: 0, -2 or a word is argparse's error naming the option (0 once
    meant all CPUs for some commands and one process for others, silently)."""
    parser = build_parser()
    options = [(path, option) for path, action in _walk(parser) for option in action.option_strings
               if option in ("--workers", "--nproc")]
    assert len(options) >= 9, options  # synth, demo, ingest, score, evaluate, publish, qa, capture, run/train
    for path, option in options:
        for bad in ("0", "-2", "two"):
            with pytest.raises(SystemExit) as stop:
                parser.parse_args([*path[1:], option, bad])
            err = capsys.readouterr().err
            assert stop.value.code == 2
            assert f"error: argument {option}: '{bad}': give a whole number of processes, 1 or more" in err, err


def test_every_metrics_option_refuses_an_empty_list(capsys):
    """`--metrics ''` silently scored the default suite (run, score, submit) or failed later (rescore)."""
    parser = build_parser()
    paths = [path for path, action in _walk(parser) if "--metrics" in action.option_strings]
    assert {path[-1] for path in paths} >= {"run", "train", "evaluate", "score", "submit", "rescore"}, paths
    for path in paths:
        for empty in ("", " , "):
            with pytest.raises(SystemExit) as stop:
                parser.parse_args([*path[1:], "--metrics", empty])
            assert stop.value.code == 2
            assert "error: argument --metrics: name at least one metric, e.g. psnr,ssim" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--seed", "-1"], "seed -1 is not an integer from 0 to 4294967295"),
    (["--seed", str(2**32)], "is not an integer from 0 to"),
    (["--device", "gpu"], "unknown device 'gpu': use one of auto, cpu, cuda, cuda:N, mps (this machine has "),
    (["--device", "cuda:99"], "device 'cuda:99' is not available"),
    (["--model", "nosuchnet"], "unknown model 'nosuchnet'"),
    (["--metrics", "psnr,nosuch"], "unknown metric 'nosuch'"),
    (["--dataset", "nosuch"], "no manifest for dataset 'nosuch'"),
    (["--dataset", "nosuch", "--manifest", "m.parquet"], "m.parquet: no manifest for dataset 'nosuch'"),
    (["--scheduler", "nowhere"], "--scheduler 'nowhere': expected one of local, dask, tcp://HOST:PORT"),
    (["--loader-workers", "-1"], "--loader-workers -1: give 0 (no worker processes) or more"),
])
@pytest.mark.parametrize("command", ["run", "train", "evaluate"])
def test_bad_run_arguments_are_one_line_errors_that_write_nothing(tmp_path, monkeypatch, capsys, command, argv,
                                                                   message):
    monkeypatch.chdir(tmp_path)  # the defaults (runs/, work/synth, manifests/) are relative to here
    args = {"--model": "classic", "--budget": "smoke", **dict(zip(argv[::2], argv[1::2]))}
    code = main([command, *(x for kv in args.items() for x in kv)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("isp-bench: error: ") and message in err and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # no run folder, no generated dataset, nothing


def test_loader_threads_without_loader_workers_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["run", "--model", "classic", "--budget", "smoke", "--device", "cpu", "--loader-threads"])
    err = capsys.readouterr().err
    assert code == 2 and err == ("isp-bench: error: --loader-threads: the loader has no workers on cpu (none by "
                                 "default); give --loader-workers N to make N threads\n")
    assert list(tmp_path.iterdir()) == []


def test_an_unavailable_device_names_the_devices_present(tmp_path, monkeypatch, capsys):
    import torch

    missing = "mps" if torch.cuda.is_available() else "cuda"
    if missing == "mps" and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        pytest.skip("this machine has both CUDA and MPS")
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--model", "classic", "--device", missing]) == 2
    err = capsys.readouterr().err
    assert f"device '{missing}' is not available" in err and "this machine has " in err and "cpu" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["run", "evaluate"])
def test_an_unwritable_cache_folder_is_a_one_line_error_naming_the_fix_before_anything_is_written(
        synth_root, tmp_path, capsys, command):
    manifest = ingest("synth", synth_root, tmp_path / "synth.parquet", workers=1, progress=False).manifest.path
    (tmp_path / "a-file").write_bytes(b"")
    code = main([command, "--model", "classic", "--budget", "smoke", "--manifest", str(manifest), "--root",
                 str(synth_root), "--cache-dir", str(tmp_path / "a-file" / "cache"), "--runs", str(tmp_path / "runs"),
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"isp-bench: error: {tmp_path / 'a-file' / 'cache'}: cannot write the preprocessing cache")
    assert "Fix: put the cache on writable storage with --cache-dir DIR or ISP_BENCH_CACHE=DIR" in err
    assert not (tmp_path / "runs").exists()


def test_a_manifest_of_another_dataset_is_refused_and_left_as_it_was(synth_root, tmp_path, capsys):
    manifest = ingest("synth", synth_root, tmp_path / "mine.parquet", workers=1, progress=False).manifest.path
    before = manifest.read_bytes()
    code = main(["run", "--model", "classic", "--dataset", "s7isp", "--budget", "smoke", "--manifest", str(manifest),
                 "--runs", str(tmp_path / "runs"), "--quiet"])
    assert code == 2 and capsys.readouterr().err == (
        f"isp-bench: error: {manifest}: a manifest of dataset 'synth', not 's7isp'; pass --dataset synth (and its "
        "--root), or a manifest of 's7isp'\n")
    assert manifest.read_bytes() == before and not (tmp_path / "runs").exists()


def test_paths_that_cannot_be_used_are_one_line_errors(tmp_path, capsys):
    (tmp_path / "a-file").write_bytes(b"")
    assert main(["demo", "--work", str(tmp_path / "a-file"), "--scenes", "1"]) == 2  # an OSError, named
    assert capsys.readouterr().err == f"isp-bench: error: {tmp_path / 'a-file' / 'synth'}: Not a directory\n"
    assert main(["synth", "--out", str(tmp_path / "s"), "--height", "0"]) == 2
    assert capsys.readouterr().err == ("isp-bench: error: height 0: sensor sides are even (whole 2×2 colour-filter "
                                       "tiles) and at least 32 pixels\n")
    assert not (tmp_path / "s").exists()


def test_evaluating_an_untrained_run_leaves_no_run_folder(synth_root, tmp_path, capsys):
    manifest = ingest("synth", synth_root, tmp_path / "synth.parquet", workers=1, progress=False).manifest.path
    code = main(["evaluate", "--model", "unet", "--budget", "smoke", "--manifest", str(manifest), "--root",
                 str(synth_root), "--runs", str(tmp_path / "runs"), "--quiet"])
    assert code == 2 and "has not finished training" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_train_and_evaluate_of_a_recorded_run_name_the_weights_they_used(synth_root, tmp_path, capsys):
    """On a recorded run whose weights are kept, ``train`` named ``reproduction/model.pt``, which did not exist, and
    ``evaluate`` called its evaluation of those weights a reproduction, as though it had trained them again."""
    manifest = ingest("synth", synth_root, tmp_path / "synth.parquet", workers=1, progress=False).manifest.path
    recipe = tmp_path / "unet-tiny.yaml"
    recipe.write_text("base: unet\nbudgets:\n  smoke: {steps: 1, batch_size: 1, patch: [32, 32]}\n")
    common = ["--recipe", str(recipe), "--budget", "smoke", "--manifest", str(manifest), "--root", str(synth_root),
              "--cache-dir", str(tmp_path / "cache"), "--runs", str(tmp_path / "runs"), "--metrics", "psnr", "--quiet"]
    assert main(["run", *common]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    capsys.readouterr()
    assert main(["train", *common]) == 0
    assert capsys.readouterr().out == f"trained weights: {run_dir / 'model.pt'}\n"
    assert main(["evaluate", *common]) == 0
    said = capsys.readouterr().out
    assert (f"the recorded run {run_dir.name}'s own weights evaluated again, not trained again (its files are left "
            "as they were; this evaluation is in its reproduction/): every metric identical") in said, said

    # the run folder itself names the run: its recipe file, budget and the rest are its config.json's
    data = ["--manifest", str(manifest), "--root", str(synth_root), "--cache-dir", str(tmp_path / "cache"),
            "--metrics", "psnr", "--quiet"]
    recipe.unlink()
    assert main(["evaluate", str(run_dir), *data]) == 0
    assert f"the recorded run {run_dir.name}'s own weights evaluated again" in capsys.readouterr().out
    assert main(["train", str(run_dir), *data]) == 0
    assert capsys.readouterr().out == f"trained weights: {run_dir / 'model.pt'}\n"
    assert main(["evaluate", str(run_dir), "--budget", "short", *data]) == 2
    assert capsys.readouterr().err == (f"isp-bench: error: {run_dir}: a run folder fixes its dataset, budget, seed and "
                                       "precision; leave out --budget (or name the run with --model or --recipe)\n")
    assert main(["evaluate", str(run_dir / "reproduction"), *data]) == 2
    assert "reproduction: not a run folder (it has no config.json)" in capsys.readouterr().err
    fewer = write_manifest(tmp_path / "fewer.parquet", read_manifest(manifest).rows()[1:], dataset="synth").path
    assert main(["evaluate", str(run_dir), "--manifest", str(fewer), *data[2:]]) == 2
    assert f"{fewer} holds other data than the run was trained on (content hash " in capsys.readouterr().err


def test_synth_refuses_a_negative_seed_before_writing(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path / "s"), "--seed", "-1"]) == 2
    assert "seed -1 is not an integer" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_devices_resolve_auto_and_refuse_what_is_missing():
    import torch

    present = available_devices()
    assert present[-1] == "cpu"
    assert resolve_device("auto") == (f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available()
                                      else present[0])
    assert resolve_device(" CPU ") == "cpu"
    with pytest.raises(DeviceError, match=r"unknown device 'tpu'.*this machine has .*cpu"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="'cuda' is not available"):
            resolve_device("cuda")
    else:
        assert resolve_device("cuda:0") == "cuda:0"


def test_a_copy_without_git_records_the_commit_it_is_told_as_declared(tmp_path):
    """A tree copied to a GPU host or cluster node has no .git: ISP_BENCH_GIT_COMMIT names its commit, recorded
    as declared; with neither, the commit is unknown (None), never guessed."""
    import isp_bench

    shutil.copytree(Path(isp_bench.__file__).parent, tmp_path / "isp_bench",
                    ignore=shutil.ignore_patterns("__pycache__"))
    probe = "import json; from isp_bench.provenance import environment; print(json.dumps(environment(())))"
    env = {k: v for k, v in os.environ.items() if k != "ISP_BENCH_GIT_COMMIT"}
    env.update(PYTHONPATH=str(tmp_path), GIT_CEILING_DIRECTORIES=str(tmp_path))

    def recorded(**extra):
        found = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env={**env, **extra},
                               capture_output=True, text=True, check=True)
        return json.loads(found.stdout)

    unknown = recorded()
    assert unknown["git_commit"] is None and "git_commit_declared" not in unknown
    told = recorded(ISP_BENCH_GIT_COMMIT="3ee550f")
    assert told["git_commit"] == "3ee550f" and "ISP_BENCH_GIT_COMMIT" in told["git_commit_declared"]
    here = environment(())  # a checkout with .git: git says, whatever the variable
    assert here["git_commit"] and "git_commit_declared" not in here


def test_the_device_is_described_for_provenance():
    import torch

    info = environment(("torch",), device="cpu")["device"]
    assert info["device"] == "cpu" and info["type"] == "cpu"
    assert info["torch"] == torch.__version__ and info["cuda"] == torch.version.cuda
    assert info["name"] == cpu_name() and info["name"]
    assert info["capability"] == torch.backends.cpu.get_cpu_capability() and info["capability"]  # AVX2, AVX512...
    assert "device" not in environment(("torch",))  # benchmarks that use no device record none
    if torch.cuda.is_available():
        gpu = describe_device("cuda:0")
        assert gpu["name"] == torch.cuda.get_device_name(0) and gpu["cudnn"] == torch.backends.cudnn.version()


def test_a_run_records_its_device_and_the_device_does_not_split_runs(synth_root, tmp_path, capsys):
    manifest = ingest("synth", synth_root, tmp_path / "synth.parquet", workers=1, progress=False).manifest.path
    common = ["--model", "classic", "--budget", "smoke", "--manifest", str(manifest), "--root", str(synth_root),
              "--cache-dir", str(tmp_path / "cache"), "--runs", str(tmp_path / "runs"), "--metrics", "psnr", "--quiet"]
    assert main(["evaluate", *common]) == 0  # --device auto
    assert main(["evaluate", *common, "--device", "cpu"]) == 0
    capsys.readouterr()
    (run_dir,) = (tmp_path / "runs").iterdir()  # auto and cpu: one run, as documented in run_benchmark
    assert list((tmp_path / "cache").glob("*.raw.npy"))  # the cache went to --cache-dir, the root is unchanged
    recorded = json.loads((run_dir / "result.json").read_text())["provenance"]["device"]
    assert recorded == describe_device("cpu")


def test_isp_bench_warnings_print_as_one_line_and_others_as_python_prints_them():
    from isp_bench.cli import _format_warning
    from isp_bench.errors import IspBenchWarning

    assert _format_warning(IspBenchWarning("m.parquet: 1 of the 3 pairs left out"), IspBenchWarning, "dataset.py",
                           120) == "warning: m.parquet: 1 of the 3 pairs left out\n"
    assert _format_warning(UserWarning("other"), UserWarning, "x.py", 7) == "x.py:7: UserWarning: other\n"
