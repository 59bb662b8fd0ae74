"""Spectral model of the synthetic camera: measured camera sensitivities, display primaries,
CIE illuminants and ColorChecker reflectances from colour-science, all on one wavelength grid.

Everything the camera sees is linear in the scene, so each way of showing a scene to the camera
(a calibrated display, reflectances under an illuminant) reduces to a 3×3 matrix computed once by
spectral integration.

Every product, inverse and solve here is computed exactly and rounded once
(:mod:`isp_bench.synth.exactmath`), so the matrices are the same bits on every machine.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import colour

from isp_bench.colorimetry import SRGB_TO_XYZ
from isp_bench.errors import DatasetError
from isp_bench.synth import exactmath

SHAPE = colour.SpectralShape(400, 700, 10)
CMFS_NAME = "CIE 1931 2 Degree Standard Observer"
COLORCHECKER_NAME = "ColorChecker N Ohta"

# XYZ → linear sRGB as the exact inverse of the IEC matrix (not the standard's printed 4-decimal inverse).
XYZ_TO_SRGB = exactmath.inverse(SRGB_TO_XYZ)


def _aligned(msds_or_sd) -> np.ndarray:
    """The measured values at the wavelengths of ``SHAPE`` (all our data is tabulated there, so
    they are read, not interpolated: interpolation would add machine-dependent last bits)."""
    wavelengths = np.asarray(msds_or_sd.wavelengths, dtype=np.float64)
    index = np.minimum(np.searchsorted(wavelengths, SHAPE.wavelengths), len(wavelengths) - 1)
    if not np.array_equal(wavelengths[index], SHAPE.wavelengths):
        raise DatasetError(f"spectral data {msds_or_sd.name!r} is not tabulated at every wavelength of {SHAPE}; "
                           "choose data sampled every 5 or 10 nm over 400-700 nm")
    return np.asarray(msds_or_sd.values, dtype=np.float64)[index]


@lru_cache(maxsize=None)
def cmfs() -> np.ndarray:
    """CIE 1931 2° colour matching functions, (n_wavelengths, 3)."""
    return _aligned(colour.MSDS_CMFS[CMFS_NAME])


@lru_cache(maxsize=None)
def camera_sensitivities(name: str) -> np.ndarray:
    """Measured spectral sensitivities (R, G, B), (n, 3), scaled so the green peak is 1."""
    s = _aligned(colour.MSDS_CAMERA_SENSITIVITIES[name])
    return s / s[:, 1].max()


@lru_cache(maxsize=None)
def display_primaries(name: str) -> np.ndarray:
    """Emission spectra of a display's R, G, B primaries at full drive, (n, 3)."""
    return _aligned(colour.MSDS_DISPLAY_PRIMARIES[name])


@lru_cache(maxsize=None)
def illuminant(name: str) -> np.ndarray:
    """Relative spectral power of a CIE illuminant, (n,), scaled to Y = 1 for a perfect reflector."""
    sd = _aligned(colour.SDS_ILLUMINANTS[name])
    return sd / exactmath.matmul(cmfs()[:, 1], sd)


@lru_cache(maxsize=None)
def colorchecker_reflectances() -> np.ndarray:
    """The 24 ColorChecker patch reflectances (N. Ohta's measurements), (24, n), row-major order."""
    sds = colour.SDS_COLOURCHECKERS[COLORCHECKER_NAME]
    return np.stack([_aligned(sd) for sd in sds.values()])


@lru_cache(maxsize=None)
def reflectance_basis() -> np.ndarray:
    """Three smooth reflectance basis spectra (n, 3): the leading singular vectors of the 24
    ColorChecker reflectances (a Maloney–Wandell linear model of surface reflectance)."""
    basis = exactmath.principal_axes(colorchecker_reflectances(), 3)
    return basis * np.sign(basis.sum(axis=0))


def camera_response(spectra: np.ndarray, sensor: str) -> np.ndarray:
    """Camera RGB of light spectra (..., n) → (..., 3)."""
    return exactmath.matmul(spectra, camera_sensitivities(sensor))


def xyz_of(spectra: np.ndarray) -> np.ndarray:
    """CIE XYZ of light spectra (..., n) → (..., 3) (same scaling as :func:`illuminant`)."""
    return exactmath.matmul(spectra, cmfs())


@dataclass(frozen=True)
class SceneLight:
    """How the camera sees a scene given as linear sRGB: ``camera_rgb = srgb_linear @ matrix.T``.

    ``white_camera_rgb`` is the camera's response to the scene's white (display white or a
    perfect reflector under the illuminant); it sets the as-shot white balance.
    """

    matrix: np.ndarray
    white_camera_rgb: np.ndarray
    description: str


def monitor_light(sensor: str, display: str) -> SceneLight:
    """A colour-managed display showing sRGB content: linear sRGB → XYZ → the display's own
    drive values (its primaries' XYZ), emitted spectrally and integrated by the camera.

    The scene white is the camera's response to displayed sRGB white (D65 after colour
    management), not to the panel's native white (all drives at 1), which is off D65 for measured
    primaries: white-balancing on the native white would tint every neutral of the content."""
    primaries = display_primaries(display)
    display_to_xyz = xyz_of(primaries.T).T  # columns: XYZ of each primary
    white_scale = display_to_xyz[1].sum()  # luminance of full white
    drive_from_srgb = exactmath.matmul(exactmath.inverse(display_to_xyz / white_scale), SRGB_TO_XYZ)
    camera_from_drive = camera_response(primaries.T, sensor).T / white_scale
    matrix = exactmath.matmul(camera_from_drive, drive_from_srgb)
    return SceneLight(matrix, exactmath.matmul(matrix, np.ones(3)), f"sRGB shown on a colour-managed '{display}'")


def reflectance_light(sensor: str, illuminant_name: str) -> SceneLight:
    """Surfaces whose reflectance lies in :func:`reflectance_basis`, chosen so that under D65 they
    have the sRGB colour of the scene pixel, photographed under ``illuminant_name``."""
    basis = reflectance_basis()
    d65 = illuminant("D65")
    xyz_from_weights = xyz_of((basis * d65[:, None]).T).T  # (3 XYZ, 3 weights)
    weights_from_srgb = exactmath.solve(xyz_from_weights, SRGB_TO_XYZ)
    light = illuminant(illuminant_name)
    camera_from_weights = camera_response((basis * light[:, None]).T, sensor).T
    matrix = exactmath.matmul(camera_from_weights, weights_from_srgb)
    white = camera_response(light, sensor)
    return SceneLight(matrix, white, f"reflectances under CIE illuminant {illuminant_name}")


def colorchecker_camera_rgb(sensor: str, illuminant_name: str) -> np.ndarray:
    """Camera RGB of the 24 ColorChecker patches under an illuminant, (24, 3), spectrally exact."""
    return camera_response(colorchecker_reflectances() * illuminant(illuminant_name)[None], sensor)


def colorchecker_srgb_linear(illuminant_name: str = "D65") -> np.ndarray:
    """Linear sRGB of the 24 patches under an illuminant (XYZ → sRGB, no adaptation), (24, 3)."""
    xyz = xyz_of(colorchecker_reflectances() * illuminant(illuminant_name)[None])
    return exactmath.matmul(xyz, XYZ_TO_SRGB.T)


def fit_color_matrix(sensor: str, illuminant_name: str = "D65") -> np.ndarray:
    """Camera RGB → XYZ (3×3) fitted by least squares on the 24 ColorChecker patches under an
    illuminant, constrained to map the illuminant's white exactly, then expressed the DNG way:
    its inverse (XYZ → camera) is normalised so that the illuminant white (Y = 1) maps to a
    camera vector whose largest component is 1.

    References
    ----------
    Adobe Systems, *Digital Negative (DNG) Specification* 1.4.0.0, "Camera to XYZ (D50)
    transform" and ColorMatrix1; G. D. Finlayson, M. Mackiewicz, A. Hurlbert, "Color correction
    using root-polynomial regression", IEEE TIP 24(5), 2015 (white-preserving least squares).
    """
    cam = colorchecker_camera_rgb(sensor, illuminant_name)
    xyz = xyz_of(colorchecker_reflectances() * illuminant(illuminant_name)[None])
    cam_white = camera_response(illuminant(illuminant_name), sensor)
    xyz_white = xyz_of(illuminant(illuminant_name))
    # Least squares for M (3×3) with M @ cam_white = xyz_white: solve per row with a Lagrange term.
    a = exactmath.matmul(cam.T, cam)
    matrix = np.empty((3, 3))
    for row in range(3):
        kkt = np.block([[2 * a, cam_white[:, None]], [cam_white[None, :], np.zeros((1, 1))]])
        rhs = np.concatenate([2 * exactmath.matmul(cam.T, xyz[:, row]), [xyz_white[row]]])
        matrix[row] = exactmath.solve(kkt, rhs)[:3]
    xyz_to_cam = exactmath.inverse(matrix)
    xyz_to_cam /= exactmath.matmul(xyz_to_cam, xyz_white / xyz_white[1]).max()
    return exactmath.inverse(xyz_to_cam)
