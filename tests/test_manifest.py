"""Manifest schema v1: round trip, schema and hash checks, validate."""

from __future__ import annotations

import shutil

import pyarrow.parquet as pq
import pytest

from isp_bench.errors import DatasetError, ManifestError
from isp_bench.ingest import ingest
from isp_bench.manifest import SCHEMA, SCHEMA_VERSION, read_manifest, summarize, validate_manifest, write_manifest


@pytest.fixture(scope="module")
def manifest_path(synth_root, tmp_path_factory):
    return ingest("synth", synth_root, tmp_path_factory.mktemp("m") / "synth.parquet", workers=1,
                  progress=False).manifest.path


def test_round_trip_preserves_rows_and_metadata(manifest_path, tmp_path):
    manifest = read_manifest(manifest_path)
    assert manifest.meta["schema_version"] == SCHEMA_VERSION
    assert manifest.dataset == "synth" and len(manifest) == 12
    rows = manifest.rows()
    copy = write_manifest(tmp_path / "copy.parquet", list(reversed(rows)), dataset="synth")
    assert copy.content_hash == manifest.content_hash  # order-independent, sorted by pair_id
    assert read_manifest(tmp_path / "copy.parquet").rows() == rows
    assert pq.read_schema(manifest_path).remove_metadata().equals(SCHEMA)
    assert rows[0]["pair_id"] < rows[1]["pair_id"]


def test_rows_carry_capture_metadata(manifest_path):
    df = read_manifest(manifest_path).to_pandas()
    row = df[df.pair_id == "0002_monitor_chelsea/low_light"].iloc[0]
    assert row.cfa == "GRBG" and list(row.black_level) == [256.0] * 4 and row.white_level == 4095
    assert row.role == "low_light" and row.exposure_ratio == 4.0 and row.subset == "monitor"
    assert len(row.color_matrix) == 9 and row.color_matrix_illuminant == 21
    assert len(row.noise_profile) == 2 and row.iso > 0 and row.exposure_s > 0
    assert len(row.input_sha256) == 64 and row.input_bytes > 0 and row.licence_class == "open"


def test_schema_and_hash_checks(manifest_path, tmp_path):
    table = pq.read_table(manifest_path)
    pq.write_table(table.drop_columns(["iso"]), tmp_path / "dropped.parquet")
    with pytest.raises(ManifestError, match="missing \\['iso'\\]"):
        read_manifest(tmp_path / "dropped.parquet")
    index = table.schema.get_field_index("split")
    edited = table.set_column(index, table.schema.field(index), [["test"] * table.num_rows])
    pq.write_table(edited, tmp_path / "edited.parquet")
    with pytest.raises(ManifestError, match="content hash"):
        read_manifest(tmp_path / "edited.parquet")
    pq.write_table(table.replace_schema_metadata({}), tmp_path / "foreign.parquet")
    with pytest.raises(ManifestError, match="not written by isp-bench"):
        read_manifest(tmp_path / "foreign.parquet")
    with pytest.raises(ManifestError, match="no such manifest"):
        read_manifest(tmp_path / "absent.parquet")
    with pytest.raises(ManifestError, match=r"a folder, not a manifest file \(it holds dropped.parquet, edited.parquet, "
                                            r"foreign.parquet\); give the .parquet file"):
        read_manifest(tmp_path)


def test_a_schema_mismatch_names_the_columns_with_the_types_expected_and_found(manifest_path, tmp_path):
    import pyarrow as pa

    # what a pandas 3 read_parquet/to_parquet round trip makes of strings and of a list column that is all null
    table = pq.read_table(manifest_path)
    table = table.cast(pa.schema([f.with_type(pa.large_string()) if f.type == pa.string() else f for f in table.schema],
                                 metadata=table.schema.metadata))
    index = table.schema.get_field_index("default_crop")
    table = table.set_column(index, pa.field("default_crop", pa.null()), pa.nulls(table.num_rows))
    pq.write_table(table, tmp_path / "edited.parquet")
    with pytest.raises(ManifestError) as error:
        read_manifest(tmp_path / "edited.parquet")
    assert str(error.value) == (
        f"{tmp_path / 'edited.parquet'}: columns or types differ from schema v1 (23 columns of another type: "
        "pair_id, dataset, scene and 5 more (expected string not null, found large_string not null); "
        "protocol_split, subset, target_device and 11 more (expected string, found large_string); "
        "default_crop (expected list<item: int32>, found null)); re-ingest the dataset")


def test_duplicate_pair_ids_are_refused(manifest_path, tmp_path):
    rows = read_manifest(manifest_path).rows()
    with pytest.raises(ManifestError, match="duplicate pair_id"):
        write_manifest(tmp_path / "dup.parquet", rows + rows[:1], dataset="synth")
    assert not (tmp_path / "dup.parquet").exists()


@pytest.mark.parametrize("root, problem", [("missing", "dataset root not found"),
                                           ("empty", "holds none of the 12 input files the manifest lists")])
def test_validate_names_a_wrong_root_once_instead_of_every_file_missing(manifest_path, tmp_path, root, problem):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=f"{tmp_path / root}: {problem}.*pass --root the folder .* was ingested "
                                           "from"):
        validate_manifest(manifest_path, tmp_path / root)


def test_validate_catches_changed_and_missing_files(manifest_path, synth_root, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(synth_root, root)
    assert validate_manifest(manifest_path, root).ok
    jpeg = root / "0000_monitor_astronaut" / "medium_exposure.jpg"
    data = bytearray(jpeg.read_bytes())
    data[-10] ^= 0xFF  # same size, other content
    jpeg.write_bytes(bytes(data))
    (root / "0003_real_chelsea" / "short_exposure.dng").unlink()
    report = validate_manifest(manifest_path, root)
    assert report.changed == ["0000_monitor_astronaut/medium_exposure.jpg"]
    assert report.missing == ["0003_real_chelsea/short_exposure.dng"]
    assert not report.ok and report.checked == 24


def test_summary_names_splits_cameras_and_ranges(manifest_path):
    text = summarize(read_manifest(manifest_path))
    assert "12 pairs" in text and "isp-bench SynthCam N5100 (12)" in text and "iso: 100" in text


def test_summary_names_a_camera_known_only_by_unique_camera_model(manifest_path, tmp_path):
    rows = [{**r, "make": None, "model": None, "unique_camera_model": "Acme Cine 4K"}
            for r in read_manifest(manifest_path).rows()]
    text = summarize(write_manifest(tmp_path / "cine.parquet", rows, dataset="synth"))
    assert "cameras: Acme Cine 4K (12)" in text
