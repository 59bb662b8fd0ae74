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
    """manifests/synth.parquet is what `isp-bench demo` makes: same DNG bytes and metadata.

    JPEG/PNG bytes depend on the encoder builds (libjpeg-turbo, zlib) and are not compared."""
    committed = read_manifest(REPO / "manifests" / "synth.parquet")
    root = generate(tmp_path / "synth", SynthConfig(), progress=False)
    fresh = ingest("synth", root, tmp_path / "synth.parquet", progress=False).manifest
    skip = {"target_sha256", "target_bytes", "linear_target_sha256", "linear_target_bytes"}
    strip = lambda rows: [{k: v for k, v in r.items() if k not in skip} for r in rows]  # noqa: E731
    assert strip(fresh.rows()) == strip(committed.rows())
