"""Colour constants and the sRGB transfer curve, written once for the whole package (numpy and torch).

A leaf module: it imports numpy only. The torch functions take tensors and import torch when called,
so importing this module never loads torch.

Where the package needs two behaviours of one conversion, both are here under names that say which:

- decoding threshold: :data:`SRGB_ENCODED_BREAK_IEC` (0.04045, as printed in IEC 61966-2-1; the torch
  curves) or :data:`SRGB_ENCODED_BREAK_CONTINUOUS` (0.0031308 × 12.92 = 0.040449936, where the
  encoding's linear segment ends; colour-science's ``eotf_sRGB`` and the metrics);
- clamping: :func:`srgb_decode_torch` clamps to [0, 1] for model inputs and leaves values outside
  [0, 1] alone for training losses (so that they get a gradient back into range);
- D65 white: :data:`D65_WHITE_XYZ` (from the chromaticity, colour-science's) or
  :data:`D65_WHITE_XYZ_5DP` (the rounded tabulated white of the S-CIELAB code and the Lab loss);
- XYZ → sRGB: :data:`XYZ_TO_SRGB` (IEC's printed 4-decimal inverse, colour-science's) or
  :data:`XYZ_TO_SRGB_LINDBLOOM` (7 decimals, used with the Bradford/ProPhoto matrices of the same
  source).

The synthetic generator has its own exact-arithmetic curve (:mod:`isp_bench.synth.look`), kept
separate so that its output is the same bits on every machine.

References: IEC 61966-2-1:1999 (sRGB); CIE 15:2004 (D65); ISO 22028-2:2013 (ROMM/ProPhoto RGB);
B. Lindbloom, "RGB/XYZ matrices" and "Chromatic adaptation" (Bradford).

Examples
--------
>>> import numpy as np
>>> srgb_decode(np.array([0.0, 0.5, 1.0])).round(6).tolist()
[0.0, 0.214041, 1.0]
>>> round(float(srgb_encode(0.214041)), 4)
0.5
>>> (SRGB_TO_XYZ @ np.ones(3)).round(4).tolist()  # sRGB white is D65, Y = 1
[0.9505, 1.0, 1.089]
"""

from __future__ import annotations

import numpy as np

#: Linear value where the sRGB encoding switches from the linear segment to the power segment.
SRGB_LINEAR_BREAK = 0.0031308
#: Slope of the linear segment (encoded = 12.92 · linear).
SRGB_SLOPE = 12.92
#: Power segment: encoded = SRGB_SCALE · linear^(1/SRGB_GAMMA) − SRGB_OFFSET.
SRGB_SCALE = 1.055
SRGB_OFFSET = 0.055
SRGB_GAMMA = 2.4
#: Encoded value where decoding switches segments, as printed in IEC 61966-2-1.
SRGB_ENCODED_BREAK_IEC = 0.04045
#: Encoded value where the linear segment ends (0.040449936): colour-science's ``eotf_sRGB`` threshold.
SRGB_ENCODED_BREAK_CONTINUOUS = SRGB_LINEAR_BREAK * SRGB_SLOPE


def _constant(rows) -> np.ndarray:
    array = np.array(rows, dtype=np.float64)
    array.setflags(write=False)
    return array


#: Linear sRGB → CIE XYZ (D65, Y of white = 1), IEC 61966-2-1's 4-decimal matrix (colour-science's
#: ``RGB_COLOURSPACES["sRGB"].matrix_RGB_to_XYZ`` is the same numbers).
SRGB_TO_XYZ = _constant([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
#: CIE XYZ → linear sRGB as printed in IEC 61966-2-1 (4 decimals; colour-science's ``matrix_XYZ_to_RGB``).
XYZ_TO_SRGB = _constant([[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415], [0.0557, -0.204, 1.057]])
#: CIE XYZ (D65) → linear sRGB to 7 decimals (Lindbloom), the companion of the two matrices below.
XYZ_TO_SRGB_LINDBLOOM = _constant(
    [[3.2404542, -1.5371385, -0.4985314], [-0.9692660, 1.8760108, 0.0415560], [0.0556434, -0.2040259, 1.0572252]]
)
#: ProPhoto RGB (ROMM) → CIE XYZ (D50), ISO 22028-2.
PROPHOTO_TO_XYZ_D50 = _constant(
    [[0.7976749, 0.1351917, 0.0313534], [0.2880402, 0.7118741, 0.0000857], [0.0000000, 0.0000000, 0.8252100]]
)
#: Bradford chromatic adaptation D50 → D65 (Lindbloom).
BRADFORD_D50_TO_D65 = _constant(
    [[0.9555766, -0.0230393, 0.0631636], [-0.0282895, 1.0099416, 0.0210077], [0.0122982, -0.0204830, 1.3299098]]
)

#: CIE 1931 2° chromaticity (x, y) of D65, as IEC 61966-2-1 and colour-science give it.
D65_XY = (0.3127, 0.3290)
#: D65 white XYZ (Y = 1) from :data:`D65_XY`: X = x/y, Z = (1 − x − y)/y (colour-science's ``xy_to_XYZ``).
D65_WHITE_XYZ = _constant([D65_XY[0] / D65_XY[1], 1.0, (1.0 - D65_XY[0] - D65_XY[1]) / D65_XY[1]])
#: D65 white XYZ (Y = 1) rounded to 5 decimals, as tabulated (the S-CIELAB 1.1.1 code, the Lab loss).
D65_WHITE_XYZ_5DP = (0.95047, 1.0, 1.08883)
#: :data:`D65_WHITE_XYZ_5DP` on the scale Y of white = 100 (95.047, 100.0, 108.883).
D65_WHITE_XYZ_100 = tuple(100 * v for v in D65_WHITE_XYZ_5DP)


def srgb_decode(encoded) -> np.ndarray:
    """IEC 61966-2-1 sRGB decoding in float64, as colour-science's ``eotf_sRGB``: the threshold is
    :data:`SRGB_ENCODED_BREAK_CONTINUOUS`, nothing is clamped (values below 0 take the linear
    segment, above 1 the power segment)."""
    encoded = np.asarray(encoded, dtype=np.float64)
    # both segments elementwise, without boolean indexing (same values, a fraction of the time)
    out = np.add(encoded, SRGB_OFFSET)
    out /= SRGB_SCALE
    with np.errstate(invalid="ignore"):  # negative inputs take the linear segment below
        np.power(out, SRGB_GAMMA, out=out)
    np.divide(encoded, SRGB_SLOPE, out=out, where=encoded <= SRGB_ENCODED_BREAK_CONTINUOUS)
    return out


def srgb_encode(linear) -> np.ndarray:
    """IEC 61966-2-1 sRGB encoding in the input's float precision, not clamped (values below
    :data:`SRGB_LINEAR_BREAK`, negatives included, take the linear segment)."""
    linear = np.asarray(linear)
    power = SRGB_SCALE * np.abs(linear) ** (1 / SRGB_GAMMA) - SRGB_OFFSET  # |·| keeps the unused segment finite
    return np.where(linear <= SRGB_LINEAR_BREAK, SRGB_SLOPE * linear, power)


def srgb_encode_torch(linear):
    """IEC 61966-2-1 sRGB encoding of a tensor, differentiable; inputs are clamped to [0, 1]
    (the same curve as ``colour.cctf_encoding(x, "sRGB")`` there)."""
    import torch

    x = linear.clamp(0.0, 1.0)
    power = SRGB_SCALE * x.clamp_min(SRGB_LINEAR_BREAK) ** (1 / SRGB_GAMMA) - SRGB_OFFSET
    return torch.where(x <= SRGB_LINEAR_BREAK, SRGB_SLOPE * x, power)


def srgb_decode_torch(encoded, *, clamp: bool):
    """IEC 61966-2-1 sRGB decoding of a tensor with the printed threshold :data:`SRGB_ENCODED_BREAK_IEC`,
    differentiable. ``clamp=True`` clamps inputs to [0, 1] (model inputs; the inverse of
    :func:`srgb_encode_torch`); ``clamp=False`` extends the linear segment below 0 and the power
    segment above 1, so a training output out of range still gets a gradient back into it."""
    import torch

    x = encoded.clamp(0.0, 1.0) if clamp else encoded
    power = ((x.clamp_min(SRGB_ENCODED_BREAK_IEC) + SRGB_OFFSET) / SRGB_SCALE) ** SRGB_GAMMA  # clamp keeps the unused segment finite
    return torch.where(x <= SRGB_ENCODED_BREAK_IEC, x / SRGB_SLOPE, power)
