"""Raw files: reading (rawpy + exifread), DNG writing (tifffile), CFA packing and demosaicing."""

from isp_bench.raw.capture import RawCapture
from isp_bench.raw.cfa import (
    BAYER_PATTERNS,
    PACKED_CHANNELS,
    CfaCrop,
    CfaError,
    cfa_masks,
    demosaic_bilinear,
    normalize,
    pack_rggb,
    rggb_crop,
    shift_cfa,
    unpack_rggb,
)

__all__ = [
    "BAYER_PATTERNS",
    "PACKED_CHANNELS",
    "CfaCrop",
    "CfaError",
    "RawCapture",
    "cfa_masks",
    "demosaic_bilinear",
    "normalize",
    "pack_rggb",
    "rggb_crop",
    "shift_cfa",
    "unpack_rggb",
]

from isp_bench.raw.dng import read_dng_tags, write_dng  # noqa: E402
from isp_bench.raw.read import read_exif, read_raw, render_raw  # noqa: E402

__all__ += ["read_dng_tags", "read_exif", "read_raw", "render_raw", "write_dng"]
