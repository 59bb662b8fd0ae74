"""The split lists and per-image metadata shipped in isp_bench/datasets/lists, and manifests built from them alone."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from isp_bench.cli import main
from isp_bench.datasets.fivek import build_d700_split, camera_models, d700_split
from isp_bench.datasets.s7isp import official_split
from isp_bench.datasets.sid import LIST_COUNTS, read_list
from isp_bench.ingest import NOT_HASHED_FLAG, ingest
from isp_bench.manifest import read_manifest

REPO = Path(__file__).resolve().parents[1]
LISTS = REPO / "isp_bench/datasets/lists"


def test_shipped_lists_match_shared_copies(shared):
    """The package data are byte-identical to the published files kept in ../shared/datasets."""
    pairs = [(f"sid/{c}_{s}_list.txt", f"sid/{c}_{s}_list.txt") for c in ("Sony", "Fuji") for s in ("train", "val", "test")]
    pairs += [("s7isp/s7_curl_val_test_scenes.csv", "s7-isp/s7_curl_val_test_scenes.csv"),
              ("fivek/camera_models.csv", "fivek/yuukicammy/camera_models.csv")]
    for ours, theirs in pairs:
        assert (LISTS / ours).read_bytes() == (shared / "datasets" / theirs).read_bytes(), ours


def test_sid_list_counts():
    for camera, counts in LIST_COUNTS.items():
        for split, n in counts.items():
            assert len(read_list(camera, split)) == n


@pytest.mark.parametrize("camera", ["Sony", "Fuji"])
def test_sid_lists_only_manifest(tmp_path, camera):
    out = tmp_path / f"sid_{camera}.parquet"
    assert main(["ingest", "sid", "--lists-only", "--model", camera, "--out", str(out), "--quiet"]) == 0
    manifest = read_manifest(out)
    rows = manifest.rows()
    assert Counter(r["split"] for r in rows) == LIST_COUNTS[camera]
    assert manifest.meta["source"]["lists_only"] is True
    assert all(NOT_HASHED_FLAG in r["flags"] and r["input_sha256"] == "" and r["input_bytes"] == 0 for r in rows)
    assert all(r["target_sha256"] is None for r in rows)
    first = read_list(camera, "train")[0]
    row = next(r for r in rows if r["input_path"] == first["short"])
    assert row["iso"] == first["iso"] and row["fnumber"] == first["fnumber"]
    assert {"iso", "fnumber", "exposure_s", "make", "model"} <= set(row["filled_from_dataset"])
    assert all(0 < r["exposure_ratio"] <= 300 for r in rows)
    if camera == "Fuji":
        assert all(r["cfa"] == "XTRANS" for r in rows)
        assert {r["scene"] for r in rows if "misaligned_ambiguous" in r["flags"]} == {"Fuji/10172"}
    else:
        assert {r["scene"] for r in rows if "misaligned" in r["flags"]} == {"Sony/10034", "Sony/10045", "Sony/10172"}
    protocol = [r for r in rows if r["protocol_split"] == "test"]
    assert protocol and all(r["split"] == "test" and "_00_" in r["input_path"] for r in protocol)
    assert {r["protocol_split"] for r in rows if r["split"] == "test" and "_00_" not in r["input_path"]} == {None}


def test_sid_lists_only_all_cameras(tmp_path):
    result = ingest("sid", None, tmp_path / "sid.parquet", progress=False, lists_only=True)
    assert len(result.manifest) == sum(sum(c.values()) for c in LIST_COUNTS.values())


def test_lists_only_refused_where_no_lists(tmp_path):
    assert main(["ingest", "msr", "--lists-only", "--out", str(tmp_path / "m.parquet")]) == 2


def test_s7_split_list():
    split = official_split()
    assert Counter(split.values()) == {"val": 10, "test": 10}
    assert all(len(s) == 15 and s[8] == "_" for s in split)


def test_fivek_camera_models_and_frozen_d700_split():
    cams = camera_models()
    assert len(cams) == 5000
    assert sum(model == "D700" for _, model in cams.values()) == 590
    shipped = d700_split()
    assert shipped == build_d700_split()  # the shipped file is exactly its documented rule
    assert Counter(shipped.values()) == {"train": 440, "test": 150}
    with open(LISTS / "fivek/d700_split.csv", newline="") as fh:
        ids = [r["file_id"] for r in csv.DictReader(fh)]
    assert ids == sorted(ids)


def test_notice_names_every_shipped_data_file():
    notice = (REPO / "NOTICE").read_text()
    assert "Data files shipped in the package" in notice
    for path in sorted(p for p in LISTS.rglob("*") if p.is_file()):
        assert path.relative_to(REPO / "isp_bench").as_posix() in notice, path
