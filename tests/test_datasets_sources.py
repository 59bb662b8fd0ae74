"""The dataset sources against miniature copies of their published layouts (tests/fixtures_datasets.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import fixtures_datasets as fx
from isp_bench.cli import main
from isp_bench.datasets import get_source, list_sources
from isp_bench.errors import DatasetError
from isp_bench.ingest import ingest
from isp_bench.manifest import read_manifest, validate_manifest

#: Every registered source but ``synth`` (test_synth.py builds that one with its generator); each needs
#: a fixture builder in fixtures_datasets.BUILDERS.
SOURCES = tuple(name for name in list_sources() if name != "synth")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Each fixture dataset ingested once: name → (root, {pair_id: row}, IngestResult)."""
    base = tmp_path_factory.mktemp("datasets")
    out = {}
    for name in SOURCES:
        root = fx.BUILDERS[name](base / name)
        result = ingest(name, root, base / "manifests" / f"{name}.parquet", workers=1, progress=False)
        out[name] = (root, {r["pair_id"]: r for r in result.manifest.rows()}, result)
    return out


def _extra(row):
    return json.loads(row["extra"]) if row["extra"] else {}


def test_all_sources_registered_with_licence_and_url():
    assert set(SOURCES) >= {"s7isp", "crispnet", "pairs", "msr", "sid", "hdrplus", "fivek", "zurich"}
    assert set(fx.BUILDERS) == set(SOURCES), "every registered source needs a fixture builder"
    for name in SOURCES:
        d = get_source(name).describe()
        assert d["layout"] and d["licence"] and d["url"] and d["licence_class"]
    assert get_source("msr").redistributable is False
    assert get_source("msr").licence_class == "non-commercial-no-redistribution"


@pytest.mark.parametrize("name", SOURCES)
def test_cli_ingest_and_validate(built, tmp_path, name, capsys):
    root = built[name][0]
    out = tmp_path / f"{name}.parquet"
    assert main(["ingest", name, "--root", str(root), "--out", str(out), "--workers", "1", "--quiet"]) == 0
    manifest = read_manifest(out)
    assert manifest.dataset == name and len(manifest) == len(built[name][1])
    assert validate_manifest(out, root).ok
    assert manifest.rows() == built[name][2].manifest.rows()  # same files → same rows


def test_s7isp(built):
    _, rows, result = built["s7isp"]
    assert len(rows) == 6 and not result.errors
    val = rows[f"{fx.S7_VAL}/well_lit"]
    assert val["split"] == "val" and rows[f"{fx.S7_TEST}/low_light"]["split"] == "test"
    assert rows[f"{fx.S7_TRAIN}/well_lit"]["split"] == "train"
    assert _extra(val)["task"] == "mimic_isp"
    low = rows[f"{fx.S7_TRAIN}/low_light"]
    assert low["input_path"].endswith("S7-ISP-Dataset/20170101_120000/short_exposure1.dng")
    assert low["target_path"].endswith("medium_exposure.jpg")
    assert low["exposure_ratio"] == pytest.approx(4.0, rel=1e-4)
    assert low["cfa"] == "GRBG" and low["white_level"] == 1023 and low["flags"] == []
    turned = rows[f"{fx.S7_TEST}/well_lit"]
    assert "rotated_target" in turned["flags"] and turned["target_rot90"] == 1
    assert (turned["target_height"], turned["target_width"]) == (48, 32)
    assert "target_exif_orientation" in val["flags"] and val["target_rot90"] == 0


def test_s7isp_layout_report(built):
    report = get_source("s7isp").check_layout(built["s7isp"][0])
    assert not report.complete and report.found["scenes"] == 3 and report.expected["scenes"] == 110
    assert any("published val/test scene" in m for m in report.missing)


def test_sid_pairs_flags_and_partial_download(built):
    _, rows, result = built["sid"]
    # a first ingest reuses nothing: the files the lists name but the download lacks are not "reused" (5 504 were)
    assert result.files_reused == 0 and result.files_inspected == 9
    assert sorted(rows) == ["Fuji/10172_00_0.033s", "Sony/00001_00_0.04s", "Sony/10034_00_0.04s",
                            "Sony/10034_01_0.1s", "Sony/20005_00_0.04s"]
    train = rows["Sony/00001_00_0.04s"]
    assert train["split"] == "train" and train["exposure_ratio"] == 250 and train["role"] == "low_light"
    assert train["iso"] == 200 and train["fnumber"] == 9 and train["cfa"] == "RGGB"
    assert train["target_path"] == "Sony/long/00001_00_10s.ARW" and len(train["target_sha256"]) == 64
    assert rows["Sony/20005_00_0.04s"]["split"] == "val"
    mis = rows["Sony/10034_00_0.04s"]
    assert mis["split"] == "test" and mis["flags"] == ["misaligned"] and mis["protocol_split"] == "test"
    burst01 = rows["Sony/10034_01_0.1s"]  # burst 01: not in the authors' protocol
    assert burst01["split"] == "test" and burst01["protocol_split"] is None
    assert train["protocol_split"] == "train"
    fuji = rows["Fuji/10172_00_0.033s"]
    assert fuji["cfa"] == "XTRANS" and fuji["black_level"] == [1024.0] * 4
    assert fuji["exposure_ratio"] == 300.0 and _extra(fuji)["ratio_uncapped"] == pytest.approx(303.03, abs=0.01)
    assert fuji["flags"] == ["misaligned_ambiguous"] and fuji["protocol_split"] == "test"
    # every other listed file is reported missing, not a crash
    assert {e["error"] for e in result.errors} == {"MissingFile"}
    assert len(result.skipped_pairs) == 1865 + 234 + 598 + 1655 + 218 + 524 - 5


def test_a_file_there_in_another_case_is_named_with_the_fix(tmp_path):
    """A SID download whose .ARW files were renamed .arw (a case-insensitive copy, say): every raw was 'missing; complete
    the download', though it was there."""
    root = fx.build_sid(tmp_path / "sid")
    short = root / "Sony" / "short" / "00001_00_0.04s.ARW"
    short.rename(short.with_suffix(".arw"))
    result = ingest("sid", root, tmp_path / "sid.parquet", workers=1, progress=False, options={"model": "Sony"})
    (error,) = [e for e in result.errors if e["path"] == "Sony/short/00001_00_0.04s.ARW"]
    assert error["message"] == (f"{short}: listed by the sid layout but missing; 00001_00_0.04s.arw is there, the name "
                                "in another case: rename it 00001_00_0.04s.ARW (the layout's names are case-sensitive)")
    assert "Sony/00001_00_0.04s" in result.skipped_pairs


def test_sid_model_filter(built, tmp_path):
    result = ingest("sid", built["sid"][0], tmp_path / "sony.parquet", workers=1, progress=False,
                    options={"model": "Sony"})
    assert len(result.manifest) == 4 and all(r["subset"] == "Sony" for r in result.manifest.rows())
    assert result.manifest.meta["source"]["options"] == {"model": "Sony"}


def test_msr_cfa_phase_detected_and_lists(built):
    _, rows, result = built["msr"]
    assert len(rows) == 8 and not result.errors
    for (noise, cam), cfa in fx.MSR_PHASES.items():
        for i, split in ((1, "train"), (2, "val"), (3, "test"), (4, "unlisted")):
            row = rows[f"{noise}/{cam}/{i}"]
            assert row["cfa"] == cfa and row["split"] == split
            assert _extra(row)["input"]["cfa_detection"]["margin"] > 0.5
            assert "target_alpha" in row["flags"] and "cfa_phase_ambiguous" not in row["flags"]
            assert row["black_level"] == [0.0] * 4 and row["white_level"] == 65535
            assert {"black_level", "white_level"} <= set(row["filled_from_dataset"])
            assert row["licence_class"] == "non-commercial-no-redistribution"
            assert (row["height"], row["width"]) == (32, 44)


def test_msr_a_folder_without_its_split_lists_is_named_first_among_what_is_missing(tmp_path):
    """Without its lists every pair of the folder gets split 'unlisted': the ingest's warning names the lists first
    (it named only counts: 'with_noise/canon listed: 0 of 4')."""
    root = fx.build_msr(tmp_path / "msr")
    for name in ("train.txt", "validation.txt", "test.txt"):
        (root / "Dataset_LINEAR_with_noise" / "bayer_canon" / name).unlink()
    (root / "Dataset_LINEAR_with_noise" / "bayer_canon" / "groundtruth" / "4.png").unlink()
    report = get_source("msr").check_layout(root)
    assert report.missing == ["Dataset_LINEAR_with_noise/bayer_canon/{train,validation,test}.txt (split lists: "
                              "without them its pairs get split 'unlisted')",
                              "Dataset_LINEAR_with_noise/bayer_canon/groundtruth/4.png"]


def test_zurich(built):
    _, rows, result = built["zurich"]
    assert len(rows) == 5 and not result.errors
    assert all("not_pixel_aligned" in r["flags"] for r in rows.values() if r["role"] == "raw_to_rgb")
    assert rows["train/0"]["split"] == "train" and rows["test/0"]["split"] == "test"
    assert rows["train/0"]["cfa"] == "RGGB" and rows["train/0"]["white_level"] == 1023
    assert "exceeds_10_bit" in rows["test/1"]["flags"] and "exceeds_10_bit" not in rows["test/0"]["flags"]
    full = rows["full_resolution/0"]
    assert full["target_path"] is None and full["role"] == "full_resolution" and full["width"] == 48


def test_crispnet(built):
    _, rows, result = built["crispnet"]
    # the Samsung renditions exist for train only: the val one is reported missing, its pair left out
    assert [e["path"] for e in result.errors] == ["datasets/monitor/samsung/rgb/val/sceneB_0.png"]
    assert sorted(rows) == ["monitor/full/val/sceneB/iphone", "monitor/train/sceneA_0/iphone",
                            "monitor/train/sceneA_0/samsung", "monitor/train/sceneA_1/iphone",
                            "monitor/train/sceneA_1/samsung", "monitor/val/sceneB_0/iphone",
                            "real/test/sceneC_3/iphone"]
    row = rows["monitor/train/sceneA_1/samsung"]
    assert row["subset"] == "monitor" and row["target_device"] == "Samsung Galaxy S22" and row["scene"] == "monitor/sceneA"
    assert row["black_level"] == [528.0] * 4 and row["white_level"] == 4095 and row["cfa"] == "RGGB"
    assert row["wb_as_shot"] == pytest.approx([2.1, 1.0, 1.4]) and row["iso"] == 200 and row["exposure_s"] == 0.02
    assert {"wb_as_shot", "iso", "exposure_s", "black_level"} <= set(row["filled_from_dataset"])
    assert _extra(row)["target_wb"] == [2.1, 1.0, 1.4] and _extra(row)["patch"] == 1
    assert "black_level_suspect" not in row["flags"]
    suspect = rows["real/test/sceneC_3/iphone"]
    assert "black_level_suspect" in suspect["flags"] and "no_metadata" in suspect["flags"]
    assert _extra(suspect)["input"]["black_check"]["min"] < 100
    full = rows["monitor/full/val/sceneB/iphone"]
    assert full["role"] == "full" and "target_half_resolution" in full["flags"]


def test_every_flag_and_role_the_suite_writes_has_a_meaning(built, tmp_path):
    """Dataset cards explain each flag and role from manifest.FLAG_MEANINGS / ROLE_MEANINGS: every flag and role
    the fixture datasets of every source get, and the flags of qa and capture session ingest, are there."""
    from isp_bench.capture.session_ingest import CALIBRATION_FLAG, UNLOGGED_FLAG
    from isp_bench.ingest import NOT_HASHED_FLAG
    from isp_bench.manifest import FLAG_MEANINGS, ROLE_MEANINGS
    from isp_bench.qa.run import QA_FLAGS

    rows = [row for _, by_id, _ in built.values() for row in by_id.values()]
    rows += ingest("sid", None, tmp_path / "sid.parquet", lists_only=True, progress=False).manifest.rows()
    flags = {f for row in rows for f in row["flags"]} | {*QA_FLAGS, CALIBRATION_FLAG, UNLOGGED_FLAG, NOT_HASHED_FLAG}
    assert flags - set(FLAG_MEANINGS) == set()
    assert {row["role"] for row in rows} - set(ROLE_MEANINGS) == set()
    assert len(flags) >= 20 and len({row["role"] for row in rows}) >= 10  # the fixtures reach most of them


def test_sid_targets_are_the_long_exposures_rendered_by_the_authors_recipe(built, tmp_path):
    """SID's target is a raw file: the training cache holds it as the authors render their ground truth (rawpy's
    postprocess with the camera's white balance, no auto-brightness, 16 bits), in sensor orientation, cropped as
    the short exposure's mosaic is packed; reading it as an image file failed."""
    import rawpy

    from isp_bench.data.cache import PreprocessCache
    from isp_bench.raw import rggb_crop

    root, rows, _ = built["sid"]
    row = next(r for r in rows.values() if r["subset"] == "Sony")
    cache = PreprocessCache(root, tmp_path / "cache")
    cache.build_row(row)
    with rawpy.imread(str(root / row["target_path"])) as raw:
        rendered = raw.postprocess(use_camera_wb=True, half_size=False, no_auto_bright=True, output_bps=16,
                                   user_flip=0)
    expected = rggb_crop(rendered.shape[:2], row["cfa"]).apply(rendered).transpose(2, 0, 1)
    entry = cache.load(row)
    assert entry.target.dtype == np.uint16 and np.array_equal(entry.target, expected) and entry.target.max() > 0
    # CameraNet's restoration target: the classic pipeline on the long exposure (its own levels and metadata),
    # where a short exposure's own raw cannot give one
    from isp_bench.data.cache import classic_linear_target
    from isp_bench.raw import read_raw

    long = read_raw(root / row["target_path"])
    packed = long.packed()[0].astype(np.float32)
    assert row["exposure_ratio"] > 1 and np.array_equal(entry.linear_target, classic_linear_target(packed, long))


def test_pairs_hash_split_and_rotation(built):
    _, rows, result = built["pairs"]
    assert sorted(rows) == ["IMG_0003", "a/IMG_0001", "b/IMG_0002"]
    from isp_bench.datasets._common import hash_split
    from isp_bench.datasets.pairs import SPLIT_FRACTIONS, SPLIT_SALT
    for pid, row in rows.items():
        assert row["split"] == hash_split(pid, SPLIT_SALT, SPLIT_FRACTIONS)
    a = rows["a/IMG_0001"]
    assert "rotated_target" in a["flags"] and a["target_rot90"] == 1 and a["target_device"] == "Apple iPhone 12 JPEG"
    b = rows["b/IMG_0002"]
    assert b["target_path"] == "b/IMG_0002.JPG" and "target_exif_orientation" in b["flags"]
    assert b["target_device"] == "Canon EOS R5 JPEG"  # the camera named once, not "Canon Canon EOS R5"
    assert rows["IMG_0003"]["target_path"] is None and rows["IMG_0003"]["flags"] == ["no_target"]


def test_pairs_find_the_jpeg_of_a_stem_with_wildcard_characters(tmp_path):
    """`IMG [1].dng` beside `IMG [1].jpg` was flagged no_target: the stem was used as a glob pattern."""
    fx.dng(tmp_path / "a" / "IMG [1].dng", make="Apple", model="iPhone 12", seed=1)
    fx.jpeg(tmp_path / "a" / "IMG [1].jpg", 32, 48, seed=1)
    fx.dng(tmp_path / "a" / "IMG_2*.dng", make="Apple", model="iPhone 12", seed=2)
    fx.jpeg(tmp_path / "a" / "IMG_2*.jpg", 32, 48, seed=2)
    rows = {r["pair_id"]: r for r in ingest("pairs", tmp_path, tmp_path / "m.parquet", workers=1,
                                            progress=False).manifest.rows()}
    assert {pid: (r["target_path"], r["flags"]) for pid, r in rows.items()} == {
        "a/IMG [1]": ("a/IMG [1].jpg", []), "a/IMG_2*": ("a/IMG_2*.jpg", [])}


def test_pairs_kept_in_two_raw_formats_are_one_pair_from_the_cameras_file(tmp_path):
    """IMG_0002.nef beside its DNG conversion and IMG_0002.JPG gave two rows with one pair id, and the whole ingest
    failed ("duplicate pair_id values")."""
    fx.dng(tmp_path / "b" / "IMG_0002.dng", make="Nikon", model="D700", seed=2)
    fx.dng(tmp_path / "b" / "IMG_0002.nef", make="Nikon", model="D700", seed=2)  # a DNG container is what LibRaw reads
    fx.jpeg(tmp_path / "b" / "IMG_0002.JPG", 32, 48, seed=2)
    result = ingest("pairs", tmp_path, tmp_path / "m.parquet", workers=1, progress=False)
    (row,) = result.manifest.rows()
    assert (row["pair_id"], row["input_path"], row["target_path"], row["flags"]) == (
        "b/IMG_0002", "b/IMG_0002.nef", "b/IMG_0002.JPG", ["other_raw_formats_ignored"])
    assert get_source("pairs").check_layout(tmp_path).found == {"raw files": 1, "jpegs": 1}


def test_a_file_reached_through_a_symlink_out_of_the_root_is_reported_not_ingested(tmp_path):
    """A symlink farm was ingested, and then its own `manifest validate` and `publish` refused the whole manifest
    (a path resolving outside the root): ingest reports such a file and leaves its pair out, like a broken one."""
    root, outside = tmp_path / "root", tmp_path / "elsewhere"
    fx.dng(root / "a" / "IMG_0001.dng", make="Apple", model="iPhone 12", seed=1)
    fx.jpeg(root / "a" / "IMG_0001.jpg", 32, 48, seed=1)
    fx.dng(outside / "IMG_0002.dng", make="Apple", model="iPhone 12", seed=2)
    fx.jpeg(root / "a" / "IMG_0002.jpg", 32, 48, seed=2)
    (root / "a" / "IMG_0002.dng").symlink_to(outside / "IMG_0002.dng")
    result = ingest("pairs", root, tmp_path / "m.parquet", workers=1, progress=False)
    assert [r["pair_id"] for r in result.manifest.rows()] == ["a/IMG_0001"] and result.skipped_pairs == ["a/IMG_0002"]
    assert [(e["path"], e["error"]) for e in result.errors] == [("a/IMG_0002.dng", "OutsideRoot")]
    assert result.errors[0]["message"] == (
        f"{root / 'a' / 'IMG_0002.dng'}: a symlink on its way leads to {outside.resolve() / 'IMG_0002.dng'}, outside "
        f"the dataset root {root.resolve()}; a manifest holds only files inside its root (a symlinked root itself is "
        "fine): copy or move the files in, or give --root the folder that holds them")
    assert validate_manifest(tmp_path / "m.parquet", root).ok
    (tmp_path / "link").symlink_to(root)  # a symlinked root: the same manifest
    again = ingest("pairs", tmp_path / "link", tmp_path / "m2.parquet", workers=1, progress=False)
    assert again.manifest.content_hash == result.manifest.content_hash


def test_hdrplus(built, tmp_path):
    root, rows, result = built["hdrplus"]
    assert len(rows) == 4 and not result.errors
    merged = rows[f"{fx.HDRPLUS_6P}/merged"]
    ref = rows[f"{fx.HDRPLUS_6P}/reference_frame"]
    assert merged["subset"] == "Nexus 6P" and merged["target_path"].startswith("results_20171023/")
    assert merged["black_level"] == [1024.0] * 4 and merged["white_level"] == 16383
    assert ref["black_level"] == [64.0] * 4 and ref["white_level"] == 1023
    assert ref["input_path"] == f"bursts/{fx.HDRPLUS_6P}/payload_N001.dng"
    assert "cropped_target" in merged["flags"] and _extra(merged)["results"] == "results_20171023"
    turned = rows[f"{fx.HDRPLUS_5}/merged"]
    assert "rotated_target" in turned["flags"] and turned["target_rot90"] == 1
    from isp_bench.datasets._common import hash_split
    from isp_bench.datasets.hdrplus import SPLIT_FRACTIONS, SPLIT_SALT
    assert merged["split"] == ref["split"] == hash_split(fx.HDRPLUS_6P, SPLIT_SALT, SPLIT_FRACTIONS)
    only = ingest("hdrplus", root, tmp_path / "6p.parquet", workers=1, progress=False,
                  options={"model": "Nexus 6P", "results": "results_20161014"})
    assert sorted(r["pair_id"] for r in only.manifest.rows()) == [f"{fx.HDRPLUS_6P}/merged", f"{fx.HDRPLUS_6P}/reference_frame"]
    assert all(r["target_path"].startswith("results_20161014/") for r in only.manifest.rows())


def test_fivek(built):
    _, rows, result = built["fivek"]
    assert sorted(rows) == [f"{fx.FIVEK_D700}/expert_c", f"{fx.FIVEK_OTHER}/expert_a", f"{fx.FIVEK_OTHER}/expert_c"]
    assert [e["path"] for e in result.errors] == [f"tiff16_a/{fx.FIVEK_D700}.tif"]  # partial export reported
    d700 = rows[f"{fx.FIVEK_D700}/expert_c"]
    from isp_bench.datasets.fivek import d700_split
    assert d700["split"] == d700_split()[fx.FIVEK_D700] and d700["subset"] == "Nikon D700"
    assert d700["licence_class"] == "fivek-adobe-mit" and rows[f"{fx.FIVEK_OTHER}/expert_c"]["licence_class"] == "fivek-adobe"
    assert {"rotated_target", "default_crop_applied", "target_prophoto"} <= set(d700["flags"])
    assert d700["target_rot90"] == 1 and d700["default_crop"] == [4, 4, 32, 48]
    assert "cropped_target" in rows[f"{fx.FIVEK_OTHER}/expert_c"]["flags"]
    assert "cropped_target" not in rows[f"{fx.FIVEK_OTHER}/expert_a"]["flags"]
    assert _extra(d700)["categories"] == "outdoor nature"
    assert "camera_model_differs_from_list" not in d700["flags"]


def test_fivek_targets_are_converted_to_srgb_and_laid_on_the_default_crop(built, tmp_path):
    """The D700 expert C TIFF is ProPhoto RGB of the DefaultCrop area, turned 90°: the cache holds it in sRGB
    (prophoto_to_srgb), in sensor orientation, on the packed crop area of the raw."""
    from isp_bench.data.cache import PreprocessCache
    from isp_bench.datasets.fivek import prophoto_to_srgb
    from isp_bench.images import read_image

    root, rows, _ = built["fivek"]
    row = rows[f"{fx.FIVEK_D700}/expert_c"]
    cache = PreprocessCache(root, tmp_path / "cache")
    cache.build_row(row)
    entry = cache.load(row)
    srgb = np.round(prophoto_to_srgb(read_image(root / row["target_path"])) * 65535).astype(np.uint16)
    assert entry.raw.shape == (4, 16, 24)  # the 32×48 DefaultCrop, not the 40×56 sensor
    assert np.array_equal(entry.target, np.rot90(srgb, row["target_rot90"]).transpose(2, 0, 1))


def test_pairs_whose_target_cannot_be_laid_on_the_raw_are_left_out_with_a_warning(built):
    """FiveK's Lightroom-cropped expert C cannot be aligned with its raw: left out of the dataset (training and
    evaluation), named in ``left_out``, with a warning; the other pairs stay."""
    from isp_bench.data import PairDataset
    from isp_bench.errors import IspBenchWarning

    root, rows, result = built["fivek"]
    with pytest.warns(IspBenchWarning, match=r"1 of the 3 pairs of split None left out, without a target that can "
                                             r"be laid on the raw \(1 cropped_target\)"):
        dataset = PairDataset(result.manifest, root, None, progress=False)
    assert dataset.left_out == {f"{fx.FIVEK_OTHER}/expert_c": "cropped_target"}
    assert sorted(r["pair_id"] for r in dataset.rows) == [f"{fx.FIVEK_D700}/expert_c", f"{fx.FIVEK_OTHER}/expert_a"]


def test_missing_root_and_wrong_folder_are_clear_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not look like"):
        list(get_source("msr").pairs(tmp_path))
    assert main(["ingest", "fivek", "--root", str(tmp_path / "nope"), "--out", str(tmp_path / "x.parquet")]) == 2
    with pytest.raises(DatasetError, match="no option"):
        get_source("msr", model="x")


def test_datasets_command_reports_completeness(built, capsys):
    assert main(["datasets"]) == 0
    listing = capsys.readouterr().out
    for name in SOURCES:
        assert f"\n{name:<10} " in "\n" + listing
    assert main(["datasets", "zurich", "--root", str(built["zurich"][0])]) == 1
    out = capsys.readouterr().out
    assert "INCOMPLETE" in out and "train pairs: found 2 of 46839 expected" in out
    assert main(["datasets", "sid", "--root", str(built["sid"][0]), "--json"]) == 1
    check = json.loads(capsys.readouterr().out)[0]["layout_check"]
    assert check["found"]["Sony train pairs"] == 1 and check["expected"]["Sony train pairs"] == 1865


def test_prophoto_to_srgb():
    from isp_bench.datasets.fivek import prophoto_to_srgb
    white = prophoto_to_srgb(np.full((1, 1, 3), 65535, np.uint16))
    black = prophoto_to_srgb(np.zeros((1, 1, 3), np.uint16))
    np.testing.assert_allclose(white, 1.0, atol=1e-6)
    np.testing.assert_allclose(black, 0.0, atol=1e-6)
    grey = prophoto_to_srgb(np.full((1, 1, 3), 0.5))  # neutral stays neutral: 0.5^1.8 linear → sRGB
    expected = 1.055 * (0.5 ** 1.8) ** (1 / 2.4) - 0.055
    np.testing.assert_allclose(grey, expected, atol=1e-5)
    red = prophoto_to_srgb(np.array([[[1.0, 0.0, 0.0]]]))  # ProPhoto red is outside sRGB: clipped
    assert red[0, 0, 0] == 1.0 and red[0, 0, 1] == 0.0
