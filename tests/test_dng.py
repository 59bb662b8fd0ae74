"""write_dng → LibRaw (read_raw) round trip."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import rawpy

from isp_bench.raw import read_raw, write_dng
from isp_bench.raw.dng import DngWriteError

CAM_TO_XYZ = np.array([[0.61, 0.29, 0.07], [0.24, 0.72, 0.04], [0.03, 0.12, 0.88]])


def _write(path, mosaic, **overrides):
    kwargs = dict(cfa="RGGB", black_level=(64, 65, 66, 67), white_level=1023, wb_as_shot=(2.1, 1.0, 1.7),
                  color_matrix=CAM_TO_XYZ, iso=400, exposure_s=1 / 60, fnumber=2.8, make="Acme", model="Sensor 9",
                  noise_profile=(1.5e-4, 2.5e-6), orientation=6, focal_length_mm=4.5,
                  datetime=dt.datetime(2024, 5, 6, 7, 8, 9))
    kwargs.update(overrides)
    return write_dng(path, mosaic, **kwargs)


@pytest.mark.parametrize("cfa", ["RGGB", "GRBG", "GBRG", "BGGR"])
@pytest.mark.parametrize("bits", [10, 12, 14])
def test_round_trip_through_libraw(tmp_path, cfa, bits):
    white = 2**bits - 1
    mosaic = np.random.default_rng(bits).integers(0, white + 1, size=(30, 46), dtype=np.uint16)
    path = _write(tmp_path / "x.dng", mosaic, cfa=cfa, white_level=white)
    capture = read_raw(path)
    assert np.array_equal(capture.mosaic, mosaic)
    assert capture.cfa == cfa
    assert capture.black_level == (64.0, 65.0, 66.0, 67.0)  # per CFA position, in the mosaic's phase
    assert capture.white_level == white
    assert capture.wb_as_shot == pytest.approx((2.1, 1.0, 1.7), rel=1e-6)
    assert np.allclose(capture.color_matrix, CAM_TO_XYZ, atol=1e-5)
    assert capture.color_matrix_illuminant == 21
    assert capture.noise_profile == (1.5e-4, 2.5e-6)
    assert (capture.iso, capture.fnumber, capture.focal_length_mm) == (400, 2.8, 4.5)
    assert capture.exposure_s == pytest.approx(1 / 60, rel=1e-9)
    assert (capture.make, capture.model, capture.unique_camera_model) == ("Acme", "Sensor 9", "Acme Sensor 9")
    assert capture.orientation == 6
    assert capture.datetime == "2024-05-06T07:08:09"
    assert capture.container == "DNG"


def test_libraw_itself_sees_the_dng_facts(tmp_path):
    mosaic = np.full((32, 32), 500, np.uint16)
    mosaic[0, 0] = 600
    path = _write(tmp_path / "x.dng", mosaic, cfa="GBRG", orientation=8)
    with rawpy.imread(str(path)) as raw:
        assert raw.color_desc == b"RGBG"
        letters = "".join("RGBG"[c] for c in raw.raw_colors_visible[:2, :2].ravel())
        assert letters == "GBRG"
        assert raw.white_level == 1023
        assert raw.sizes.flip == 5  # LibRaw's code for EXIF Orientation 8


def test_default_crop_round_trips(tmp_path):
    mosaic = np.arange(40 * 48, dtype=np.uint16).reshape(40, 48) % 1000
    capture = read_raw(_write(tmp_path / "x.dng", mosaic, default_crop=(2, 4, 36, 38)))
    assert capture.default_crop == (2, 4, 36, 38)


@pytest.mark.parametrize("bad", [
    dict(mosaic=np.zeros((4, 4), np.float32)),
    dict(cfa="XTRANS"),
    dict(black_level=(1.5, 0, 0, 0)),
    dict(white_level=40, black_level=64),
    dict(wb_as_shot=(1.0, 0.0, 1.0)),
    dict(orientation=9),
    dict(noise_profile=(1.0, 2.0, 3.0)),
])
def test_invalid_arguments_are_refused_and_leave_no_file(tmp_path, bad):
    mosaic = bad.pop("mosaic", np.zeros((4, 4), np.uint16))
    with pytest.raises((DngWriteError, ValueError)):
        _write(tmp_path / "x.dng", mosaic, **bad)
    assert list(tmp_path.iterdir()) == []


def test_dng_without_make_and_model_is_named_by_unique_camera_model(tmp_path):
    mosaic = np.random.default_rng(0).integers(0, 1024, size=(24, 32), dtype=np.uint16)
    path = _write(tmp_path / "cine.dng", mosaic, make=None, model=None, unique_camera_model="Acme Cine 4K")
    capture = read_raw(path)
    assert (capture.make, capture.model) == (None, None)  # the file has no Make/Model tags: nothing guessed
    assert capture.unique_camera_model == "Acme Cine 4K"
    assert (capture.camera_name, capture.camera_name_source) == ("Acme Cine 4K", "UniqueCameraModel")
    assert capture.metadata()["camera_name_source"] == "UniqueCameraModel"
    assert np.array_equal(capture.mosaic, mosaic)


def test_camera_name_from_make_and_model_when_present(tmp_path):
    mosaic = np.random.default_rng(1).integers(0, 1024, size=(24, 32), dtype=np.uint16)
    capture = read_raw(_write(tmp_path / "x.dng", mosaic))
    assert (capture.camera_name, capture.camera_name_source) == ("Acme Sensor 9", "Make+Model")


def test_a_dng_must_name_its_camera(tmp_path):
    with pytest.raises(DngWriteError, match="UniqueCameraModel"):
        _write(tmp_path / "x.dng", np.zeros((4, 4), np.uint16), make=None, model=None)
    assert list(tmp_path.iterdir()) == []
