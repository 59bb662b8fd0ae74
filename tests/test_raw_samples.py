"""read_raw on every real raw file in ../shared/raw-samples (values from its SOURCES.md)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from isp_bench.errors import (
    NoPixelDataError,
    NotMosaicError,
    RawFileError,
    TruncatedFileError,
    UnsupportedFormatError,
)
from isp_bench.raw import pack_rggb, read_raw

COLORCHART = "valid/canon_eos-kiss-x4-550d_magiclantern-colorchart-14bit-uncompressed.dng"
LINEAR_DNG = "valid/canon_eos-6d_linearraw-downscaled-with-jpeg-preview.dng"

# file → the error read_raw must raise (SOURCES.md says what rawpy does with each)
BROKEN = {
    "broken/canon_eos-350d_cr2-stub-pixels-stripped.cr2": UnsupportedFormatError,  # LibRawFileUnsupportedError
    "broken/canon_eos-350d_dng-stub-pixels-stripped.dng": NoPixelDataError,  # opens, pixels undefined
    "broken/canon_eos-digital-rebel_crw-stub-pixels-stripped.crw": TruncatedFileError,  # LibRawIOError
    "broken/canon_eos-m50_cr3-stub-pixels-stripped.cr3": TruncatedFileError,
    "broken/fujifilm_finepix-s5pro_raf-stub-pixels-stripped.raf": TruncatedFileError,
    "broken/fuzz_exiv2-issue839-poc_malformed.rw2": UnsupportedFormatError,
    "broken/konica-minolta_dimage-a2_mrw-stub-pixels-stripped.mrw": TruncatedFileError,
    "broken/nikon_d70_nef-stub-pixels-stripped.nef": TruncatedFileError,  # LibRawDataError
    "broken/panasonic_dmc-lx3_rw2-stub-pixels-stripped.rw2": NoPixelDataError,  # opens, pixels ~all 0
}


def test_every_shared_sample_is_covered(shared):
    files = {p.relative_to(shared / "raw-samples").as_posix()
             for p in (shared / "raw-samples").glob("*/*") if p.suffix != ".md"}
    assert files == set(BROKEN) | {COLORCHART, LINEAR_DNG}


def test_colorchart_dng_matches_sources_md(shared):
    capture = read_raw(shared / "raw-samples" / COLORCHART)
    assert capture.mosaic.dtype == np.uint16
    assert capture.mosaic.shape == (1156, 1734)  # visible 1734×1156 (W×H)
    assert capture.visible_margins == (26, 152)  # top/left margins
    assert capture.cfa == "RGGB"  # raw_pattern [[0, 1], [3, 2]] over 'RGBG'
    assert capture.black_level == (2056.0,) * 4
    assert capture.white_level == 15000.0
    assert (int(capture.mosaic.min()), int(capture.mosaic.max())) == (1958, 12128)
    assert capture.mosaic.mean() == pytest.approx(2634.04, abs=0.01)
    # camera_whitebalance [1.0, 0.4037, 0.684] normalised to G = 1; AsShotNeutral = [1, 2.477, 1.462]
    assert capture.wb_as_shot == pytest.approx((1 / 0.4037141799926758, 1.0, 0.6839945316314697 / 0.4037141799926758),
                                               rel=1e-5)
    assert capture.make == "Canon" and capture.model == "Canon EOS Kiss X4"
    assert capture.unique_camera_model == "Canon EOS Kiss X4"
    assert capture.iso is None and capture.exposure_s is None and capture.fnumber is None  # EXIF holds 0
    assert capture.container == "DNG" and capture.orientation == 1
    # LibRaw's rgb_xyz_matrix is all zeros for this file; the DNG ColorMatrix1 is read from the tags
    assert capture.xyz_to_camera is not None
    assert np.allclose(np.array(capture.color_matrix) @ np.array(capture.xyz_to_camera), np.eye(3))
    packed, crop = pack_rggb(capture.normalized(), capture.cfa)
    assert packed.shape == (4, 578, 867) and (crop.top, crop.left) == (0, 0)


def test_linear_raw_dng_is_not_a_mosaic(shared):
    with pytest.raises(NotMosaicError, match="already-demosaiced") as info:
        read_raw(shared / "raw-samples" / LINEAR_DNG)
    assert LINEAR_DNG.split("/")[1] in str(info.value)


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_files_raise_the_right_error(shared, name):
    path = shared / "raw-samples" / name
    with pytest.raises(BROKEN[name]) as info:
        read_raw(path)
    assert isinstance(info.value, RawFileError)
    assert str(path) in str(info.value)  # the message names the file
    assert "(" in str(info.value)  # …and what to do



def test_a_file_exifread_cannot_parse_prints_nothing_on_stderr(tmp_path):
    """exifread logs "File format not recognized." for such a file; with logging not set up (as in the CLI; under
    pytest its log capture would hide it) Python would print it on stderr, through progress bars and --quiet."""
    path = tmp_path / "notes.jpg"
    path.write_bytes(b"these are not the bytes of an image file\n" * 20)
    code = "import sys; from isp_bench.raw.read import read_exif; print(read_exif(sys.argv[1]))"
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == ""
