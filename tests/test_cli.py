"""The README's main command and the committed embedded-default manifest."""

from __future__ import annotations

from pathlib import Path

from isp_bench.cli import main
from isp_bench.ingest import ingest
from isp_bench.manifest import read_manifest
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
