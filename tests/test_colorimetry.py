"""One colour module: every sRGB constant and curve of the package lives in isp_bench.colorimetry."""

from __future__ import annotations

import ast
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from isp_bench import colorimetry as C

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import colour

PACKAGE = Path(C.__file__).parent
#: The synthetic generator's exact-arithmetic curve (isp_bench/synth/look.py) writes the curve's
#: constants again on purpose (cross-machine byte reproducibility); nothing else may.
EXACT_SYNTH_CURVE = PACKAGE / "synth" / "look.py"
CURVE_CONSTANTS = {0.04045, 0.0031308, 12.92}
MATRIX_ROWS = {tuple(row) for row in C.SRGB_TO_XYZ.tolist()} | {tuple(row) for row in C.XYZ_TO_SRGB.tolist()}
WHITES = {0.95047, 95.047, 1.08883, 108.883, 0.3127}


def _float_literals(node: ast.AST) -> list[float]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and type(n.value) is float]


def _number_rows(tree: ast.AST) -> list[tuple[float, ...]]:
    rows = []
    for n in ast.walk(tree):
        if isinstance(n, (ast.List, ast.Tuple)) and n.elts and all(
            isinstance(e, ast.Constant) and isinstance(e.value, (int, float)) for e in n.elts
        ):
            rows.append(tuple(float(e.value) for e in n.elts))
    return rows


def test_no_module_but_colorimetry_writes_an_srgb_constant():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == Path(C.__file__):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        floats = set(_float_literals(tree))
        curve = floats & CURVE_CONSTANTS
        if curve and path != EXACT_SYNTH_CURVE:
            offenders.append(f"{path.relative_to(PACKAGE)}: sRGB curve constants {sorted(curve)}")
        if floats & WHITES:
            offenders.append(f"{path.relative_to(PACKAGE)}: D65 white {sorted(floats & WHITES)}")
        rows = MATRIX_ROWS.intersection(_number_rows(tree))
        if rows:
            offenders.append(f"{path.relative_to(PACKAGE)}: sRGB matrix rows {sorted(rows)}")
    assert offenders == []


def test_the_exact_synth_curve_is_the_only_allowed_copy_and_still_exists():
    floats = set(_float_literals(ast.parse(EXACT_SYNTH_CURVE.read_text(encoding="utf-8"))))
    assert CURVE_CONSTANTS - {0.04045} <= floats  # it decodes at 0.0031308 × 12.92, not 0.04045


def test_constants_are_colour_sciences_to_the_last_bit():
    srgb = colour.RGB_COLOURSPACES["sRGB"]
    assert np.array_equal(C.SRGB_TO_XYZ, srgb.matrix_RGB_to_XYZ)
    assert np.array_equal(C.XYZ_TO_SRGB, srgb.matrix_XYZ_to_RGB)
    d65 = colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"]["D65"]
    assert tuple(d65) == C.D65_XY
    assert np.array_equal(C.D65_WHITE_XYZ, colour.xy_to_XYZ(d65))
    assert C.SRGB_ENCODED_BREAK_CONTINUOUS == float(colour.models.eotf_inverse_sRGB(C.SRGB_LINEAR_BREAK))
    assert C.D65_WHITE_XYZ_100 == (95.047, 100.0, 108.883)


def test_curves_match_colour_science_and_each_other():
    x = np.linspace(0.0, 1.0, 2001)
    np.testing.assert_allclose(C.srgb_decode(x), colour.models.eotf_sRGB(x), rtol=0, atol=1e-15)
    np.testing.assert_allclose(C.srgb_encode(x), colour.models.eotf_inverse_sRGB(x), rtol=0, atol=1e-15)
    t = torch.from_numpy(x)
    np.testing.assert_allclose(C.srgb_encode_torch(t).numpy(), C.srgb_encode(x), rtol=0, atol=1e-15)
    # the IEC threshold 0.04045 and the continuous one differ by < 1e-8 in the output
    np.testing.assert_allclose(C.srgb_decode_torch(t, clamp=True).numpy(), C.srgb_decode(x), rtol=0, atol=1e-8)
    np.testing.assert_allclose(C.srgb_encode(C.srgb_decode(x)), x, rtol=0, atol=1e-12)


def test_variants_differ_where_their_names_say():
    out_of_range = torch.tensor([-0.1, 1.2], dtype=torch.float64)
    clamped = C.srgb_decode_torch(out_of_range, clamp=True)
    extended = C.srgb_decode_torch(out_of_range, clamp=False)
    assert clamped.tolist() == [0.0, 1.0]
    assert extended[0].item() == pytest.approx(-0.1 / 12.92, abs=1e-15)
    assert extended[1].item() == pytest.approx(((1.2 + 0.055) / 1.055) ** 2.4, abs=1e-12)
    between = np.array([0.04045])  # decodes on the power segment with colour-science's threshold
    assert C.srgb_decode(between)[0] == pytest.approx(((0.04045 + 0.055) / 1.055) ** 2.4, abs=0)
    assert C.srgb_decode_torch(torch.from_numpy(between), clamp=False)[0].item() == 0.04045 / 12.92
    with pytest.raises(ValueError):
        C.SRGB_TO_XYZ[0, 0] = 1.0  # shared constants are read-only


def test_importing_colorimetry_does_not_import_torch():
    code = "import sys, isp_bench.colorimetry; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
