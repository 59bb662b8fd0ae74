"""The papers' CSV, the leaderboards built from it and from run results, and the scoreboard."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from isp_bench.cli import main
from isp_bench.datasets import list_sources
from isp_bench.errors import IspBenchWarning
from isp_bench.leaderboard import LeaderboardError, build_all, build_leaderboard, build_scoreboard, reported_table
from isp_bench.models import list_models, model_card
from isp_bench.models.papers import COMPLEXITY_METRICS, METRIC_COLUMNS, REPORTED_CSV, reported_datasets

TEMPLATE = min((REPO_ROOT / "runs").glob("synth-cameranet-short-seed0-*/result.json"))  # a committed measured run
DATASET_PAGES = ("msr", "s7isp", "hdrplus", "sid", "fivek", "crispnet")


def _csv_rows() -> list[dict[str, str]]:
    with open(REPORTED_CSV, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _write_result(runs: Path, run_id: str, **changes) -> Path:
    """A result.json in the real format (the committed CameraNet run's), with ``changes`` applied."""
    result = json.loads(TEMPLATE.read_text())
    result.update(run_id=run_id, **changes)
    if "model" in changes and "config" not in changes:  # trained with that model's own recipe
        result["config"] = {**result["config"], "model": result["model"], "recipe": result["model"]}
    (runs / run_id).mkdir(parents=True)
    (runs / run_id / "result.json").write_text(json.dumps(result))
    return runs / run_id


# ----------------------------------------------------------------------------------------- the CSV


def test_csv_models_and_datasets_are_registered():
    rows = _csv_rows()
    assert len(rows) == 220
    models, sources = set(list_models()), set(list_sources())
    for row in rows:
        assert not row["model"] or row["model"] in models, row
        assert not row["dataset"] or row["dataset"] in sources, row
        assert row["dataset"] or row["metric"] in COMPLEXITY_METRICS, row
        assert row["metric"] in COMPLEXITY_METRICS or (row["paper"].split(" (")[0], row["metric"]) in METRIC_COLUMNS
    assert set(DATASET_PAGES) <= reported_datasets()


def test_package_csv_is_the_shared_transcription_plus_pynet(shared):
    transcribed = (shared / "papers" / "reported-results.csv").read_bytes()
    package = REPORTED_CSV.read_bytes()
    assert package.startswith(transcribed)
    added = list(csv.reader(package[len(transcribed):].decode().splitlines()))
    assert [r[3] for r in added] == ["pynet"] * 3


def test_cards_read_the_papers_figures_from_the_csv():
    cameranet = model_card("cameranet").reported
    assert cameranet.gflops == 3306.69 and cameranet.params == 26_530_000  # not the 3 310 once typed in
    assert cameranet.seconds_per_frame == 0.892 and cameranet.flops_per_mac == 2
    deepisp = model_card("deepisp").reported
    # CameraNet's measurement of its re-implementation, not a DeepISP-paper figure
    assert (deepisp.params, deepisp.gflops, deepisp.source) == (629_000, 12869.79, "CameraNet Table IV (complexity)")
    notes = " ".join(model_card("deepisp").notes)
    assert "the paper's 0.629" not in notes and "CameraNet Table IV's measurement" in notes
    assert {r.table for r in model_card("crispnet").reported.results} >= {"Table 1", "Table 2", "Table 4"}
    pynet = model_card("pynet").reported.results
    assert [(r.dataset, r.metrics) for r in pynet] == [("zurich", {"psnr": 21.17, "ms_ssim": 0.8623})]
    # nothing published is typed into a model module any more
    for path in (REPO_ROOT / "isp_bench" / "models").glob("*.py"):
        if path.name != "papers.py":
            assert not re.search(r"Reported(Result)?\(|gflops=", path.read_text()), path


def test_measured_macs_beside_cameranet_table_iv():
    # CameraNet Table IV counts 2 FLOPs per MAC: DeepISP-Net's 12 869.79 GFLOPs are 2 × our MACs to 0.02 %
    deepisp = model_card("deepisp", measure=True)
    assert 2 * deepisp.macs_4032x3024 / 1e9 == pytest.approx(deepisp.reported.gflops, rel=2e-4)
    # CameraNet: the released-code configuration is 26.1 GFLOPs (0.8 %) under the printed 3 306.69
    cameranet = model_card("cameranet", measure=True)
    gap = cameranet.reported.gflops - 2 * cameranet.macs_4032x3024 / 1e9
    assert gap == pytest.approx(26.09, abs=0.01)
    assert any(f"{gap:.1f} GFLOPs" in n for n in cameranet.notes)


# ------------------------------------------------------------------------------------- leaderboards


def test_every_dataset_page_exists_before_any_run(tmp_path):
    paths = build_all(tmp_path / "runs", tmp_path / "lb")
    assert {p.name for p in paths} >= {f"{d}.md" for d in DATASET_PAGES} | {"README.md"}
    msr = (tmp_path / "lb" / "msr.md").read_text()
    assert "No run has been scored on this dataset yet." in msr and "measured (" not in msr
    rows = [line for line in msr.splitlines() if line.startswith("| ")]
    # methods the suite does not implement are shown, as reported only; ours name the registry model
    assert any(line.startswith("| SEM | DeepISP | Table I | panasonic test, linear | reported only | 38.93 |")
               for line in rows)
    assert any(line.startswith("| DJDD | DeepISP | Table I | panasonic test, srgb | `djdd` | 32.6 |") for line in rows)


def test_measured_and_reported_rows_in_their_own_columns_and_linked(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "lb"
    result = json.loads(TEMPLATE.read_text())
    _write_result(runs, "hdrplus-cameranet-paper-seed0-abc", dataset="hdrplus", budget="paper",
                  manifest={**result["manifest"], "dataset": "hdrplus"})
    page = build_leaderboard(runs, "hdrplus", out).read_text()
    measured_header = next(line for line in page.splitlines() if line.startswith("| model | kind"))
    reported_header = next(line for line in page.splitlines() if line.startswith("| method (as printed)"))
    assert "| scielab ↓ |" in measured_header and "| psnr ↑ |" in measured_header
    # CameraNet's S-CIELAB is ISETCam's scielabRGB: a column of its own, never our `scielab`
    assert "| S-CIELAB (ISETCam scielabRGB) |" in reported_header and "| scielab |" not in reported_header
    assert "| SSIM (CameraNet, variant unstated) |" in reported_header and "| ssim |" not in reported_header
    row = next(line for line in page.splitlines() if line.startswith("| cameranet | measured (paper)"))
    # measured params/GMACs beside Table IV's (3 306.69 GFLOPs / 2 FLOPs per MAC)
    assert "| 24.95 | 26.53 | 1640.3 | 1653.3 |" in row
    assert "[`hdrplus-cameranet-paper-seed0-abc`](../runs/hdrplus-cameranet-paper-seed0-abc/result.json)" in row
    assert "| L3 algorithm | CameraNet | Table II |" in page and "| reported only | 19.23 | 0.682 | 9.84 |" in page

    board = build_scoreboard(runs, out).read_text()
    assert [line for line in board.splitlines() if line.startswith("## ")] == ["## DeepISP", "## CameraNet",
                                                                                "## CRISPnet"]
    row = next(line for line in board.splitlines()
               if line.startswith("| CameraNet | Table II | `cameranet` | [hdrplus](hdrplus.md)"))
    psnr = result["metrics"]["psnr"]["mean"]
    assert "(../runs/hdrplus-cameranet-paper-seed0-abc/result.json) (paper budget)" in row
    assert row.endswith(f"| psnr {psnr - 25.01:+.3g} |")  # only psnr has our definition in Table II
    not_yet = next(line for line in board.splitlines() if line.startswith("| CRISPnet | Table 2 | `crispnet`"))
    assert "not yet measured" in not_yet and "`isp-bench ingest crispnet --root DIR`" in not_yet
    assert "`isp-bench run --model crispnet --dataset crispnet --budget paper --device cuda`" in not_yet
    # CRISPnet's ΔE*ab76 ("the RMS error in CIELAB") is our delta_e76_rms
    assert "delta_e76_rms 6.36" in not_yet


def test_the_scoreboard_has_one_row_per_method_and_dataset_with_each_protocol_in_it(tmp_path):
    board = build_scoreboard(tmp_path / "runs", tmp_path / "lb").read_text()
    rows = [line for line in board.splitlines() if line.startswith("| DeepISP (Ours) | Table I | `deepisp-lowlevel`")]
    assert len(rows) == 1  # four protocols of MSR (Panasonic/Canon × linear/sRGB) in one row
    assert "panasonic test, linear: psnr 39.31; panasonic test, srgb: psnr 33.65; canon test, linear: psnr 41.7" in rows[0]
    keys = [tuple(line.split(" | ")[:4]) for line in board.splitlines() if line.startswith("| ") and "`" in line]
    assert len(keys) == len(set(keys))


def test_one_row_per_key_the_newest(tmp_path):
    runs = tmp_path / "runs"
    result = json.loads(TEMPLATE.read_text())
    old = {**result["provenance"], "finished": "2026-01-01T00:00:00+00:00"}
    new = {**result["provenance"], "finished": "2026-02-01T00:00:00+00:00"}
    _write_result(runs, "synth-cameranet-short-seed0-new", provenance=new)
    _write_result(runs, "synth-cameranet-short-seed0-old", provenance=old)
    _write_result(runs, "synth-cameranet-short-seed1-x", provenance=old, seed=1)  # another key: kept
    fp16 = {**result["config"], "precision": "fp16"}
    _write_result(runs, "synth-cameranet-short-seed0-fp16", provenance=old, config=fp16)  # another key: kept
    other_recipe = {**result["config"], "recipe": "cameranet-sgd"}  # another key: kept
    _write_result(runs, "synth-cameranet-short-seed0-sgd", provenance=old, config=other_recipe)
    own_recipe = {**result["config"], "recipe": "cameranet"}  # `--model cameranet`: the same key as no recipe
    _write_result(runs, "synth-cameranet-short-seed0-own", provenance=old, config=own_recipe)
    page = build_leaderboard(runs, "synth", tmp_path / "lb").read_text()
    main_table = page.split("Across seeds")[0]  # below it: seed 0 and seed 1's mean and spread
    rows = [line for line in main_table.splitlines() if line.startswith("| cameranet |")]
    assert len(rows) == 4, page
    assert "seed0-new" in page and "seed0-old" not in page and "seed0-own" not in page
    assert sum("measured (short, seed 0)" in r or "measured (short, seed 1)" in r for r in rows) == 2
    assert sum("measured (short, fp16)" in r for r in rows) == 1
    assert sum("measured (short, recipe cameranet-sgd)" in r for r in rows) == 1


def test_a_users_copy_of_a_recipe_gets_its_own_row(tmp_path):
    """A recipe file named like a packaged recipe (my/cameranet.yaml, `base: cameranet`, 2 steps) was recorded as
    recipe "cameranet" and, newer, replaced the packaged recipe's row; it is recorded as "cameranet.yaml"."""
    from isp_bench.train.recipe import resolve_recipe

    copy = tmp_path / "my" / "cameranet.yaml"
    copy.parent.mkdir()
    copy.write_text("base: cameranet\nbudgets:\n  short: {steps: 2}\n")
    config = resolve_recipe(str(copy), budget="short", dataset="synth")
    assert config["recipe"] == "cameranet.yaml" and resolve_recipe("cameranet", budget="short")["recipe"] == "cameranet"
    runs = tmp_path / "runs"
    result = json.loads(TEMPLATE.read_text())
    newer = {**result["provenance"], "finished": "2099-01-01T00:00:00+00:00"}
    _write_result(runs, "synth-cameranet-short-seed0-official")
    _write_result(runs, "synth-cameranet-short-seed0-copy", provenance=newer,
                  config={**result["config"], "recipe": config["recipe"]})
    page = build_leaderboard(runs, "synth", tmp_path / "lb").read_text()
    assert "seed0-official" in page and "seed0-copy" in page
    assert "measured (short, recipe cameranet.yaml)" in page


def test_a_result_that_cannot_be_read_is_left_off_with_a_warning(tmp_path):
    """A truncated result.json (or {} or a list) ended `isp-bench leaderboard`, and `run` after its scores, in a
    traceback: the file is named in a warning and every other run is shown."""
    runs = tmp_path / "runs"
    _write_result(runs, "synth-cameranet-short-seed0-good")
    for run_id, text in (("a-truncated", '{"run_id": "x", "mod'), ("b-empty", "{}"), ("c-list", "[1, 2]")):
        (runs / run_id).mkdir()
        (runs / run_id / "result.json").write_text(text)
    with pytest.warns(IspBenchWarning) as caught:
        page = build_leaderboard(runs, "synth", tmp_path / "lb").read_text()
    assert "seed0-good" in page
    said = [str(w.message) for w in caught]
    assert [m.split(":")[0] for m in said] == [str(runs / r / "result.json") for r in ("a-truncated", "b-empty", "c-list")]
    assert all("left off the leaderboards: not a run's result" in m for m in said)


def test_a_model_trained_with_several_seeds_shows_each_seed_and_their_mean_and_spread(tmp_path):
    runs = tmp_path / "runs"
    result = json.loads(TEMPLATE.read_text())
    psnr, delta_e = result["metrics"]["psnr"], result["metrics"]["delta_e76"]
    for seed, (p, e) in enumerate([(28.0, 6.0), (30.0, 5.0), (29.0, 7.0)]):
        _write_result(runs, f"synth-cameranet-short-seed{seed}-x", seed=seed,
                      metrics={**result["metrics"], "psnr": {**psnr, "mean": p}, "delta_e76": {**delta_e, "mean": e}})
    _write_result(runs, "synth-cameranet-standard-seed0-x", budget="standard")  # one seed: no seed, no spread
    page = build_leaderboard(runs, "synth", tmp_path / "lb").read_text()
    labels = [line.split(" | ")[1] for line in page.split("Across seeds")[0].splitlines()
              if line.startswith("| cameranet |")]
    assert labels == ["measured (short, seed 0)", "measured (short, seed 1)", "measured (short, seed 2)",
                      "measured (standard)"]
    table = page.split("Across seeds")[1].split("\n\n")[1].splitlines()
    header, rows = table[0].split(" | "), table[2:]
    (row,) = rows
    cells = dict(zip(header, row.split(" | ")))
    assert cells["kind"] == "measured (short)" and cells["seeds"] == "0, 1, 2"
    assert cells["psnr ↑"] == "29 ± 1" and cells["delta_e76 ↓"] == "6 ± 1"  # sample standard deviations


def test_submitted_results_are_shown_as_submitted(tmp_path):
    runs = tmp_path / "runs"
    result = json.loads(TEMPLATE.read_text())
    _write_result(runs, "synth-sub-mynet", kind="submitted", model="mynet", submission={"paper": "mine"},
                  model_card=None, budget=None, seed=None, config={})
    page = build_leaderboard(runs, "synth", tmp_path / "lb").read_text()
    row = next(line for line in page.splitlines() if line.startswith("| mynet |"))
    assert row.startswith("| mynet | submitted | – | – | – | – |")
    assert f"| {result['metrics']['psnr']['mean']:.4g} |" in row
    assert "Reported by the papers" not in page and "papers' own numbers" not in page  # synth: none


def test_cli_leaderboard_writes_every_page_and_the_scoreboard(tmp_path, capsys):
    # a mistyped --runs is an error that writes nothing: the boards beside it would lose their measured rows
    assert main(["leaderboard", "--runs", str(tmp_path / "runz")]) == 2
    assert capsys.readouterr().err.startswith(f"isp-bench: error: {tmp_path / 'runz'}: no such folder of runs; ")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "runs").mkdir()
    assert main(["leaderboard", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "all")]) == 0
    assert sorted(p.name for p in (tmp_path / "all").glob("*.md")) == sorted(
        [f"{d}.md" for d in reported_datasets()] + ["README.md"])
    assert main(["leaderboard", "--dataset", "zurich", "--runs", str(tmp_path / "runs"),
                 "--out", str(tmp_path / "one")]) == 0
    zurich = (tmp_path / "one" / "zurich.md").read_text()
    assert "| PyNET (pre-trained PyTorch port) | PyNET |" in zurich and "| 21.17 | 0.8623 |" in zurich
    assert "leaderboard:" in capsys.readouterr().out


def test_nothing_to_show_still_raises(tmp_path):
    assert reported_table("pairs")[1] == []
    with pytest.raises(LeaderboardError, match="no reported results"):
        build_leaderboard(tmp_path / "runs", "pairs", tmp_path / "lb")


# ---------------------------------------------------------------------------------- models cache


def test_models_answers_from_the_cache_without_torch(tmp_path, monkeypatch):
    from isp_bench.models import _cache
    from isp_bench.models.cli import card_dicts

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = json.dumps(card_dicts(), indent=2, sort_keys=True, default=str) + "\n"
    cache = json.loads((tmp_path / "isp-bench" / "model-cards.json").read_text())
    assert cache["complete"] and cache["cards"]["cameranet"]["macs_4032x3024"] == 1_640_299_167_744
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    probe = ("import sys; from isp_bench.models.cli import main; main(['models', '--json']); "
             "print('torch imported' if 'torch' in sys.modules else 'no torch', file=sys.stderr)")
    second = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert second.stderr.strip() == "no torch" and second.stdout == first
    # a cache written by other code (or unreadable) is ignored: the cards are measured again
    cache["code_version"] = "0" * 64
    (tmp_path / "isp-bench" / "model-cards.json").write_text(json.dumps(cache))
    assert _cache.load() == {"cards": {}, "complete": False}
    (tmp_path / "isp-bench" / "model-cards.json").write_text("{truncated")
    assert _cache.load() == {"cards": {}, "complete": False}


def test_a_page_keeps_only_the_previews_it_shows(tmp_path):
    """Previews are copied beside the page under the run's preview name: when the runs change (a new test
    split, a removed run) the copies the page no longer shows are removed, not left to accumulate."""
    from PIL import Image

    runs, out = tmp_path / "runs", tmp_path / "boards"
    for run_id, frame in (("synth-unet-short-seed0-a", "0001_old_scene__low_light"),
                          ("synth-djdd-short-seed0-b", "0001_old_scene__low_light")):
        (_write_result(runs, run_id, model=run_id.split("-")[1]) / "previews").mkdir()
        Image.new("RGB", (4, 4)).save(runs / run_id / "previews" / f"{frame}.png")
    build_leaderboard(runs, "synth", out)
    assert sorted(p.name for p in (out / "previews" / "synth").iterdir()) == [
        "synth-djdd-short-seed0-b__0001_old_scene__low_light.png", "synth-unet-short-seed0-a__0001_old_scene__low_light.png"]
    (runs / "synth-djdd-short-seed0-b" / "result.json").unlink()
    for old in (runs / "synth-unet-short-seed0-a" / "previews").iterdir():
        old.rename(old.with_name("0002_new_scene__low_light.png"))
    page = build_leaderboard(runs, "synth", out).read_text()
    assert sorted(p.name for p in (out / "previews" / "synth").iterdir()) == [
        "synth-unet-short-seed0-a__0002_new_scene__low_light.png"]
    assert "previews/synth/synth-unet-short-seed0-a__0002_new_scene__low_light.png" in page


def test_a_model_run_at_two_budgets_shows_each_preview_and_each_missing_metric_once(tmp_path):
    """A model's short and standard runs keep their own preview (they were one file, the later overwriting the
    earlier), each row labelled with its budget; a metric that no run could score is named once, with the
    first run's reason (runs made on other machines word the same failure differently)."""
    from PIL import Image

    runs, out = tmp_path / "runs", tmp_path / "boards"
    for run_id, budget, shade, why in (("synth-unet-short-seed0-a", "short", 10, "no weights; offline"),
                                       ("synth-unet-standard-seed0-b", "standard", 200, "no weights here; dns")):
        run = _write_result(runs, run_id, model="unet", budget=budget, unavailable_metrics={"lpips": why})
        (run / "previews").mkdir()
        Image.new("RGB", (4, 4), (shade,) * 3).save(run / "previews" / "0001_scene__low_light.png")
    page = build_leaderboard(runs, "synth", out).read_text()
    copies = sorted((out / "previews" / "synth").iterdir())
    assert [Image.open(p).getpixel((0, 0))[0] for p in copies] == [10, 200]
    assert "| unet | measured (short) | ![unet](previews/synth/synth-unet-short-seed0-a__0001_scene__low_light.png) |" in page
    assert "| unet | measured (standard) |" in page
    assert page.count("lpips: ") == 1 and "lpips: no weights" in page


def test_each_subset_of_a_split_gets_its_own_means(tmp_path):
    """The synthetic test split holds monitor and real-world pairs (the CRISPnet paper's two test sets): the page
    gives each run's PSNR and ΔE76 means per subset from its per_image.parquet, a run without one has no row
    there, and a split of one subset gets no such table."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    runs, out = tmp_path / "runs", tmp_path / "boards"
    scores = pq.read_table(TEMPLATE.parent / "per_image.parquet")
    pq.write_table(scores, _write_result(runs, "synth-cameranet-short-seed0-a") / "per_image.parquet")
    _write_result(runs, "synth-unet-short-seed0-b", model="unet")  # no per-image scores
    lines = build_leaderboard(runs, "synth", out).read_text().splitlines()
    header = next(line for line in lines if line.startswith("| model | kind | psnr ↑ monitor"))
    assert header == ("| model | kind | psnr ↑ monitor (4) | psnr ↑ real (4) | delta_e76 ↓ monitor (4) | "
                      "delta_e76 ↓ real (4) | run |")
    table = lines[lines.index(header) + 2:]
    row = table[0].split(" | ")
    expected = [pc.mean(scores.filter(pc.equal(scores["subset"], subset))[name]).as_py()
                for name in ("psnr", "delta_e76") for subset in ("monitor", "real")]
    assert row[:2] == ["| cameranet", "measured (short)"]
    assert [float(v) for v in row[2:6]] == pytest.approx(expected, 1e-3)
    assert abs(expected[0] - expected[1]) > 1  # the subsets differ: the split's mean alone would hide it
    assert not table[1].startswith("| unet")

    one_subset = scores.set_column(scores.schema.get_field_index("subset"), "subset", pa.array(["real"] * len(scores)))
    pq.write_table(one_subset, runs / "synth-cameranet-short-seed0-a" / "per_image.parquet")
    assert "psnr ↑ monitor" not in build_leaderboard(runs, "synth", out).read_text()
