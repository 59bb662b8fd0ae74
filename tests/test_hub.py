"""isp_bench.hub: publish a manifest as a Hugging Face dataset folder, load it back.

The round trip goes through ``datasets.load_dataset`` on the local folder (offline, cache inside
tmp_path), which reads the card's ``configs`` exactly as the Hub serves them. Nothing touches the
network: ``--repo-id`` uploads are not exercised here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from isp_bench.datasets import base as datasets_base
from isp_bench.errors import DatasetError
from isp_bench.datasets.synth import SynthSource
from isp_bench.hub import (
    PublishError,
    RedistributionError,
    check_redistributable,
    data_files,
    load,
    plan_shards,
    publish,
    read_card,
)
from isp_bench.hub._format import CARD_FILE, STATE_FILE
from isp_bench.images import read_image
from isp_bench.ingest import ingest
from isp_bench.manifest import COLUMNS, read_manifest, validate_manifest, write_manifest
from isp_bench.raw import read_raw

SHARD_MB = 0.15  # the small synthetic pairs are ~50 kB: several shards per split


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def manifest_path(synth_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hub-manifest") / "synth.parquet"
    ingest("synth", synth_root, out, workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def published(manifest_path, synth_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("hub-published") / "synth-hf"
    return publish(manifest_path, synth_root, out, shard_mb=SHARD_MB, workers=1, progress=False)


@pytest.fixture
def offline(monkeypatch, tmp_path) -> Path:
    """No network, and every datasets/hub cache inside tmp_path; returns the datasets cache dir."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    return tmp_path / "hf-datasets"


def _register(monkeypatch, cls) -> None:
    # A source registered for this test only (monkeypatch removes it afterwards).
    monkeypatch.setitem(datasets_base._SOURCES, cls.name, cls)


def _relabel(manifest_path: Path, out: Path, source) -> Path:
    """The synthetic manifest's rows as if another source (another licence) had ingested them."""
    manifest = read_manifest(manifest_path)
    rows = [{**r, "dataset": source.name, "licence_class": source.licence_class} for r in manifest.rows()]
    write_manifest(out, rows, dataset=source.name, errors=manifest.errors, source_meta=manifest.meta["source"])
    return out


# --------------------------------------------------------------------------------------------- round trip


def test_round_trip_through_load_dataset(published, manifest_path, synth_root, offline):
    import datasets

    manifest = read_manifest(manifest_path)
    ds = datasets.load_dataset(str(published.folder), cache_dir=str(offline))
    expected_splits = sorted({r["split"] for r in manifest.rows()})
    assert sorted(ds.keys()) == expected_splits

    by_id = {r["pair_id"]: r for r in manifest.rows()}
    seen = []
    for split in ds:
        # undecoded target bytes, exactly as stored
        rows = ds[split].cast_column("target", datasets.Image(decode=False))
        for row in rows:
            expected = by_id[row["pair_id"]]
            assert row["split"] == split
            for column in COLUMNS:  # every manifest column, same value (floats exact)
                assert row[column] == expected[column], (row["pair_id"], column)
            assert sha256(row["raw"]) == expected["input_sha256"]
            assert row["raw"] == (synth_root / expected["input_path"]).read_bytes()
            assert row["target"]["path"] == expected["target_path"]
            assert sha256(row["target"]["bytes"]) == expected["target_sha256"]
            assert sha256(row["linear_target"]) == expected["linear_target_sha256"]
            seen.append(row["pair_id"])
    assert sorted(seen) == sorted(by_id)  # every pair exactly once

    # decoded as the Hub viewer / a user would: the target is an image of the recorded size
    first = ds[expected_splits[0]][0]
    assert first["target"].size == (first["target_width"], first["target_height"])

    # every shard carries the manifest's metadata
    for shard in published.shards:
        meta = json.loads(pq.read_schema(published.folder / shard["name"]).metadata[b"isp_bench.publish"])
        assert meta["manifest"] == manifest.meta


def test_card_validates(published, manifest_path, offline):
    import datasets

    manifest = read_manifest(manifest_path)
    header, body = read_card(published.folder)
    assert header["license"] == "other" and header["license_link"] == "LICENSE.md"
    assert (published.folder / "LICENSE.md").read_text().count(SynthSource.licence) == 1
    assert header["task_categories"] == ["image-to-image"]
    assert header["size_categories"] == ["n<1K"]
    (config,) = header["configs"]
    declared = {entry["split"]: entry["path"] for entry in config["data_files"]}
    assert sorted(declared) == sorted({r["split"] for r in manifest.rows()})

    # the configs point at exactly the shards written, and those files exist
    written: dict[str, set[str]] = {}
    for shard in published.shards:
        written.setdefault(shard["name"].split("/")[1].split("-")[0], set()).add(shard["name"])
    matched = data_files(published.folder)
    assert {s: {str(p.relative_to(published.folder)) for p in files} for s, files in matched.items()} == written
    assert all(p.is_file() for files in matched.values() for p in files)
    for split, names in written.items():
        count = len(names)
        assert names == {f"data/{split}-{i:05d}-of-{count:05d}.parquet" for i in range(count)}
    assert sum(len(n) for n in written.values()) > len(written)  # several shards per split at this shard size

    # load_dataset reads each split it declares, with the manifest's row count
    for split in declared:
        ds = datasets.load_dataset(str(published.folder), split=split, cache_dir=str(offline))
        assert ds.num_rows == sum(r["split"] == split for r in manifest.rows())

    # the prose states where it came from
    assert manifest.content_hash in body
    from isp_bench import __version__

    assert f"isp-bench {__version__}" in body
    for needle in ("## Source", "## Capture conditions", "## Cameras", "## Splits", "## Flags and known issues",
                   "## Citation", "SynthCam", "`rotated_target`", "No scene lies in more than one of train, val and test"):
        assert needle in body, needle


def test_load_gives_manifest_and_raw_captures(published, manifest_path, synth_root, tmp_path):
    manifest = read_manifest(manifest_path)
    pub = load(published.folder)
    assert pub.table.equals(manifest.table)
    assert pub.manifest.meta == manifest.meta and pub.content_hash == manifest.content_hash
    assert sorted(pub.pair_ids()) == sorted(r["pair_id"] for r in manifest.rows())

    for pair_id in (pub.pair_ids()[0], pub.pair_ids()[-1]):
        row = pub.row(pair_id)
        capture = pub.raw(pair_id)
        reference = read_raw(synth_root / row["input_path"])
        np.testing.assert_array_equal(capture.mosaic, reference.mosaic)
        assert capture.metadata() == reference.metadata()
        assert capture.black_level == tuple(row["black_level"]) and capture.cfa == row["cfa"]
        np.testing.assert_array_equal(pub.target(pair_id), read_image(synth_root / row["target_path"]))
        linear = pub.linear_target(pair_id)
        assert linear.dtype == np.uint16
        np.testing.assert_array_equal(linear, read_image(synth_root / row["linear_target_path"]))

    # written back as a dataset root + manifest: the files verify and the manifest is byte-identical
    new_manifest = pub.to_root(tmp_path / "root")
    assert validate_manifest(new_manifest, tmp_path / "root").ok
    assert new_manifest.read_bytes() == manifest_path.read_bytes()


# --------------------------------------------------------------------------------------------- shards


def test_plan_shards_sizes_and_names(manifest_path):
    rows = read_manifest(manifest_path).rows()
    plans = plan_shards(rows, shard_mb=SHARD_MB)
    assert plans == plan_shards(list(reversed(rows)), shard_mb=SHARD_MB)  # input order does not matter
    assert sorted(i for p in plans for i in p.pair_ids) == sorted(r["pair_id"] for r in rows)
    for p in plans:
        assert p.estimated_bytes <= SHARD_MB * 1e6 or len(p.pair_ids) == 1
        assert p.pair_ids == sorted(p.pair_ids)
    one = plan_shards(rows, shard_mb=500)  # Hub default: one shard per split for a small set
    assert [p.name for p in one] == [f"data/{s}-00000-of-00001.parquet" for s in sorted({r["split"] for r in rows})]
    with pytest.raises(PublishError, match="must be positive"):
        plan_shards(rows, shard_mb=0)
    bad = [{**rows[0], "split": "hold-out"}]
    with pytest.raises(PublishError, match="not a valid Hugging Face split name"):
        plan_shards(bad)


def test_parallel_export_is_byte_identical(published, manifest_path, synth_root, tmp_path):
    result = publish(manifest_path, synth_root, tmp_path / "par", shard_mb=SHARD_MB, workers=2, progress=False)
    assert result.shards_written == len(published.shards)
    assert [(s["name"], s["sha256"]) for s in result.shards] == [(s["name"], s["sha256"]) for s in published.shards]
    assert (tmp_path / "par" / CARD_FILE).read_bytes() == (published.folder / CARD_FILE).read_bytes()


def test_interrupted_export_resumes(published, manifest_path, synth_root, tmp_path):
    out = tmp_path / "resume"
    finished: list[str] = []

    def stop_after_three(info):
        finished.append(info["name"])
        if len(finished) == 3:
            raise KeyboardInterrupt  # what Ctrl-C does between two shards

    with pytest.raises(KeyboardInterrupt):
        publish(manifest_path, synth_root, out, shard_mb=SHARD_MB, workers=1, progress=False, on_shard=stop_after_three)
    assert not (out / CARD_FILE).exists()  # an unfinished export has no card: nothing would load it
    state = json.loads((out / STATE_FILE).read_text())
    assert sorted(state["completed"]) == sorted(finished)

    # what a hard kill leaves: the temporary file of the shard being written; and one completed shard damaged
    (out / "data" / ".train-00009-of-00010.parquet.x1y2.parquet").write_bytes(b"PAR1 partial")
    damaged = out / finished[1]
    damaged.write_bytes(damaged.read_bytes()[:-100])
    kept = {name: (out / name).stat().st_mtime_ns for name in (finished[0], finished[2])}

    result = publish(manifest_path, synth_root, out, shard_mb=SHARD_MB, workers=1, progress=False)
    assert result.shards_reused == 2
    assert result.shards_written == len(published.shards) - 2
    assert {name: (out / name).stat().st_mtime_ns for name in kept} == kept  # verified, not rewritten
    assert not list((out / "data").glob(".*"))
    assert [(s["name"], s["sha256"]) for s in result.shards] == [(s["name"], s["sha256"]) for s in published.shards]
    assert load(out).content_hash == published.manifest_hash

    # a finished export re-run verifies everything and writes nothing
    again = publish(manifest_path, synth_root, out, shard_mb=SHARD_MB, workers=1, progress=False)
    assert (again.shards_written, again.shards_reused) == (0, len(published.shards))


def test_republish_with_other_sharding_replaces_old_shards(manifest_path, synth_root, tmp_path):
    out = tmp_path / "reshard"
    small = publish(manifest_path, synth_root, out, shard_mb=SHARD_MB, workers=1, progress=False)
    big = publish(manifest_path, synth_root, out, shard_mb=500, workers=1, progress=False)
    assert big.shards_reused == 0 and len(big.shards) < len(small.shards)
    assert sorted(str(p.relative_to(out)) for p in (out / "data").iterdir()) == sorted(s["name"] for s in big.shards)
    assert len(load(out)) == small.rows


def test_refuses_foreign_folder_and_changed_files(manifest_path, synth_root, tmp_path):
    foreign = tmp_path / "foreign"
    (foreign / "data").mkdir(parents=True)
    (foreign / "data" / "train-00000-of-00001.parquet").write_bytes(b"not ours")
    with pytest.raises(PublishError, match="did not write"):
        publish(manifest_path, synth_root, foreign, progress=False)
    assert (foreign / "data" / "train-00000-of-00001.parquet").read_bytes() == b"not ours"

    root = tmp_path / "root"
    shutil.copytree(synth_root, root)
    target = root / read_manifest(manifest_path).rows()[0]["target_path"]
    target.write_bytes(target.read_bytes() + b"\0")
    with pytest.raises(PublishError, match="sha256 differs"):
        publish(manifest_path, root, tmp_path / "changed", progress=False)


def test_a_wrong_root_is_refused_before_anything_is_written(manifest_path, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="empty: holds none of the 12 input files the manifest lists"):
        publish(manifest_path, tmp_path / "empty", tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_targets_pil_cannot_decode_stay_binary(manifest_path, synth_root, tmp_path, offline):
    """SID-like: the target is itself a raw file, so `target` is plain bytes, not an Image feature."""
    import datasets

    manifest = read_manifest(manifest_path)
    by_scene = {r["scene"]: r for r in manifest.rows() if r["role"] == "well_lit"}
    rows = [{**r, "target_path": by_scene[r["scene"]]["input_path"], "target_bytes": by_scene[r["scene"]]["input_bytes"],
             "target_sha256": by_scene[r["scene"]]["input_sha256"]} for r in manifest.rows() if r["role"] == "low_light"]
    raw_target = write_manifest(tmp_path / "raw-target.parquet", rows, dataset="synth")
    result = publish(raw_target.path, synth_root, tmp_path / "raw-target-hf", progress=False)
    _, body = read_card(result.folder)
    assert "`target` (binary)" in body
    ds = datasets.load_dataset(str(result.folder), cache_dir=str(offline))
    assert ds["train"].features["target"] == datasets.Value("binary")
    for row in ds["train"]:
        assert sha256(row["target"]) == row["target_sha256"] == by_scene[row["scene"]]["input_sha256"]
    pub = load(result.folder)
    pair = pub.pair_ids()[0]
    assert pub.target_bytes(pair) == (synth_root / pub.row(pair)["target_path"]).read_bytes()


# --------------------------------------------------------------------------------------------- licences


class _NoRedistribution(SynthSource):
    name = "hubtest-msr-like"
    title = "A dataset whose licence forbids redistribution"
    licence = "Research use only; redistribution of the images is not permitted"
    licence_class = "non-commercial-no-redistribution"
    redistributable = False
    url = "https://example.org/msr-like"


class _ResearchOnly(SynthSource):
    name = "hubtest-fivek-like"
    title = "A research-only dataset"
    licence = "Licensed for non-commercial research and education only"
    licence_class = "research-only"
    redistributable = True
    url = "https://example.org/fivek-like"
    citation = "@inproceedings{example2011,\n  title = {An Example},\n  year = {2011}\n}"


def test_refuses_non_redistributable_source(monkeypatch, manifest_path, synth_root, tmp_path):
    _register(monkeypatch, _NoRedistribution)
    manifest = _relabel(manifest_path, tmp_path / "restricted.parquet", _NoRedistribution)
    out = tmp_path / "restricted-hf"
    with pytest.raises(RedistributionError) as excinfo:
        publish(manifest, synth_root, out, progress=False)
    message = str(excinfo.value)
    assert "forbids redistribution" in message and _NoRedistribution.licence in message
    assert _NoRedistribution.url in message and "Share the manifest" in message
    assert not out.exists()  # refused before anything is written

    # the check itself: the source's flag, and rows whose licence class forbids it
    check_redistributable(SynthSource(), ["open"])
    with pytest.raises(RedistributionError, match="licence class"):
        check_redistributable(SynthSource(), ["open", "non-commercial-no-redistribution"])


def test_research_only_licence_is_carried(monkeypatch, manifest_path, synth_root, tmp_path):
    _register(monkeypatch, _ResearchOnly)
    manifest = _relabel(manifest_path, tmp_path / "research.parquet", _ResearchOnly)
    result = publish(manifest, synth_root, tmp_path / "research-hf", progress=False)
    header, body = read_card(result.folder)
    assert _ResearchOnly.licence in header["extra_gated_prompt"]
    assert "research-only" in next(iter(header["extra_gated_fields"]))
    assert _ResearchOnly.licence in body and "@inproceedings{example2011" in body
    assert "Access is gated" in body
    classes = {c for s in result.shards for c in pq.read_table(result.folder / s["name"], columns=["licence_class"])
               .column("licence_class").to_pylist()}
    assert classes == {"research-only"}
    assert set(load(result.folder).table.column("licence_class").to_pylist()) == {"research-only"}


def test_fivek_card_names_each_rows_licence_and_pairs_without_one_are_refused(tmp_path):
    """FiveK's rows carry per-image licences (fivek-adobe, fivek-adobe-mit) that the card said were the source's
    class `research-only`; without its licence lists every pair was flagged licence_unlisted and published anyway."""
    from fixtures_datasets import build_fivek

    root = build_fivek(tmp_path / "fivek")
    manifest = ingest("fivek", root, tmp_path / "fivek.parquet", workers=1, progress=False).manifest
    classes = sorted(r["licence_class"] for r in manifest.rows())
    assert classes == ["fivek-adobe", "fivek-adobe", "fivek-adobe-mit"]  # the Canon has two experts' renditions
    _, body = read_card(publish(manifest.path, root, tmp_path / "fivek-hf", progress=False).folder)
    assert ("Licence class `research-only`; each row's `licence_class` names the licence of its files: "
            "`fivek-adobe` (2 pairs), `fivek-adobe-mit` (1 pair).") in body
    for name in ("filesAdobe.txt", "filesAdobeMIT.txt"):
        (root / name).unlink()
    unlisted = ingest("fivek", root, tmp_path / "unlisted.parquet", workers=1, progress=False).manifest
    assert all("licence_unlisted" in r["flags"] for r in unlisted.rows())
    with pytest.raises(RedistributionError, match=r"3 of the 3 pairs have no known licence \(flag licence_unlisted; "
                       r"the first: .*Put the lists in the dataset root and ingest again"):
        publish(unlisted.path, root, tmp_path / "unlisted-hf", progress=False)
    assert not (tmp_path / "unlisted-hf").exists()


def test_your_own_captures_are_published_under_the_licence_you_declare(manifest_path, synth_root, tmp_path):
    from fixtures_datasets import build_pairs

    root = build_pairs(tmp_path / "mine")
    manifest = ingest("pairs", root, tmp_path / "mine.parquet", workers=1, progress=False).manifest.path
    with pytest.raises(RedistributionError, match="holds your own captures: declare the licence you publish them "
                                                  "under with --licence ID"):
        publish(manifest, root, tmp_path / "none", progress=False)
    with pytest.raises(PublishError, match=r"^--licence 'CC BY 4.0' is not a Hugging Face licence identifier; did "
                                           r"you mean cc-by-4.0"):
        publish(manifest, root, tmp_path / "bad", progress=False, licence="CC BY 4.0")
    with pytest.raises(PublishError, match="'cc-by-40' is not a Hugging Face licence identifier; did you mean "
                                           "cc-by-4.0"):  # lower case, but no licence the Hub knows
        publish(manifest, root, tmp_path / "bad", progress=False, licence="cc-by-40")
    assert not (tmp_path / "none").exists() and not (tmp_path / "bad").exists()
    result = publish(manifest, root, tmp_path / "mine-hf", progress=False, licence="cc-by-4.0")
    header, body = read_card(result.folder)
    assert header["license"] == "cc-by-4.0" and "extra_gated_prompt" not in header  # the publisher's terms
    assert "cc-by-4.0, declared by the publisher of these captures" in body and "Access is gated" not in body
    assert "cc-by-4.0, declared by the publisher" in (result.folder / "LICENSE.md").read_text()
    # the card addresses its readers: the source's words to the isp-bench user ("your own captures") stay out
    assert header["pretty_name"] == "Raw + camera JPEG pairs, captured by the publisher"
    assert "your own" not in body.lower() and "cite this dataset's repository" in body
    with pytest.raises(PublishError, match="published under its own licence"):  # a public dataset keeps its own
        publish(manifest_path, synth_root, tmp_path / "synth-hf", progress=False, licence="cc0-1.0")


# --------------------------------------------------------------------------------------------- CLI


def test_cli_publish(manifest_path, synth_root, tmp_path, capsys):
    from isp_bench.hub.cli import add_commands

    parser = argparse.ArgumentParser(prog="isp-bench")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["publish", str(manifest_path), "--root", str(synth_root), "--out", str(tmp_path / "cli"),
                              "--shard-mb", "0.3", "--workers", "1", "--quiet"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "published 'synth'" in out and "0 verified and kept" in out
    assert len(load(tmp_path / "cli")) == len(read_manifest(manifest_path))


# ---------------------------------------------------------------- card sections on their own


def test_card_sections_name_the_dataset_not_the_last_camera():
    """The card's split note, usage and provenance say `synth`, the adapter's name (the single
    145-line card_body reused `name` for the camera of the last row, so they said
    "isp-bench SynthCam N5100")."""
    from conftest import REPO_ROOT
    from isp_bench.datasets import get_source
    from isp_bench.hub.card import cameras_section, card_body, provenance_section, splits_section

    manifest = read_manifest(REPO_ROOT / "manifests" / "synth.parquet")
    source, rows = get_source("synth"), manifest.rows()
    shards = [{"name": "data/train-00000-of-00002.parquet", "bytes": 2_000_000},
              {"name": "data/train-00001-of-00002.parquet", "bytes": 500_000},
              {"name": "data/test-00000-of-00001.parquet", "bytes": 1_000_000}]
    body = card_body(manifest, source, shards)
    assert 'pub.to_root("synth-root")' in body and "dataset `synth`, schema" in body
    assert "isp-bench's `synth` adapter assigns" in body and "SynthCam N5100-root" not in body

    splits = sorted({r["split"] for r in rows})
    table = splits_section(rows, splits, shards, source)[3].splitlines()
    n_train = sum(r["split"] == "train" for r in rows)
    assert f"| `train` | {n_train} | {len({r['scene'] for r in rows if r['split'] == 'train'})} | 2 | 2.5 |" in table
    cameras = cameras_section(rows)[3].splitlines()
    assert len(cameras) == 3 and cameras[2].startswith("| isp-bench SynthCam N5100 |")
    assert cameras[2].endswith(f"| {len(rows)} |")
    assert provenance_section(manifest, "synth", len(rows))[-1] == ""  # the card ends with a newline
