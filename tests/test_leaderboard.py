"""Leaderboards: the papers' reported rows, with and without measured runs."""

from __future__ import annotations

import pytest

from isp_bench.cli import main
from isp_bench.datasets import list_sources
from isp_bench.leaderboard import LeaderboardError, build_leaderboard, reported_datasets, reported_table
from isp_bench.models import model_cards


def test_every_reported_result_names_a_dataset_key():
    keys = set(list_sources())
    for card in model_cards():
        for res in card.reported.results:
            assert res.dataset in keys, f"{card.name}: {res.dataset!r} is not a dataset key ({sorted(keys)})"
            assert res.table and res.metrics, card.name


def test_reported_rows_without_measured_runs(tmp_path):
    # no runs at all: the page is still written, with the papers' rows in a table of their own
    board = build_leaderboard(tmp_path / "runs", "zurich", tmp_path / "lb").read_text()
    assert "No measured runs for this dataset yet." in board
    assert "## Reported by the papers" in board and "as the paper defines it" in board
    header = next(line for line in board.splitlines() if line.startswith("| model | source"))
    assert "| psnr |" in header and "| ms_ssim |" in header  # labelled by metric key, no measured spec
    row = next(line for line in board.splitlines() if line.startswith("| pynet |"))
    # PyNET-PyTorch README, pre-trained model: PSNR 21.17, MS-SSIM 0.8623
    assert "| 21.17 | 0.8623 |" in row and "| 47.5 |" in row


def test_cli_leaderboard_for_a_dataset_with_only_reported_rows(tmp_path, capsys):
    assert main(["leaderboard", "--dataset", "zurich", "--runs", str(tmp_path / "runs"),
                 "--out", str(tmp_path / "lb")]) == 0
    assert "leaderboard:" in capsys.readouterr().out
    assert "| pynet |" in (tmp_path / "lb" / "zurich.md").read_text()
    # without --dataset: every dataset with runs or reported rows (here: no runs at all)
    assert main(["leaderboard", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "all")]) == 0
    assert sorted(p.name for p in (tmp_path / "all").glob("*.md")) == sorted(f"{d}.md" for d in reported_datasets())
    assert "zurich" in reported_datasets()


def test_nothing_to_show_still_raises(tmp_path):
    assert reported_table("pairs")[1] == []
    with pytest.raises(LeaderboardError, match="no reported results"):
        build_leaderboard(tmp_path / "runs", "pairs", tmp_path / "lb")
