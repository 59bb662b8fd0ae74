"""Sensor model of the synthetic camera: exposure, Bayer sampling, shot and read noise, black and
white levels, clipping, and the DNG NoiseProfile that describes the noise exactly."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from isp_bench.raw.cfa import cfa_masks


@dataclass(frozen=True)
class SensorSpec:
    """A Bayer sensor.

    ``full_well_e`` electrons fill the range from black to white at base ISO; at ISO ``i`` the
    analogue gain is ``i / base_iso`` so ``full_well_e · base_iso / i`` electrons saturate.
    ``read_noise_e`` is the pre-gain read noise in electrons, ``adc_noise_dn`` the post-gain noise
    in raw units.
    """

    name: str = "SynthCam N5100"
    make: str = "isp-bench"
    spectral_sensitivities: str = "Nikon 5100 (NPL)"
    cfa: str = "GRBG"
    bits: int = 12
    black_level: int = 256
    full_well_e: float = 12000.0
    base_iso: float = 100.0
    read_noise_e: float = 2.5
    adc_noise_dn: float = 0.8

    @property
    def white_level(self) -> int:
        return 2**self.bits - 1

    @property
    def range_dn(self) -> float:
        return float(self.white_level - self.black_level)

    def electrons_at_white(self, iso: float) -> float:
        return self.full_well_e * self.base_iso / iso

    def noise_profile(self, iso: float) -> tuple[float, float]:
        """DNG NoiseProfile (S, O): variance of the normalised signal x is ``S·x + O``."""
        e_white = self.electrons_at_white(iso)
        shot = 1.0 / e_white
        read = (self.read_noise_e / e_white) ** 2 + (self.adc_noise_dn / self.range_dn) ** 2
        return shot, read


def expose(
    camera_rgb: np.ndarray,
    sensor: SensorSpec,
    *,
    iso: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Photograph a full-resolution camera-RGB irradiance image (H×W×3, 1.0 = saturation at
    this exposure) with ``sensor``: sample the CFA, draw Poisson shot noise and Gaussian read
    noise, add the black level, quantise and clip. Returns the uint16 mosaic."""
    h, w, _ = camera_rgb.shape
    masks = cfa_masks((h, w), sensor.cfa)
    signal = np.clip((camera_rgb * masks).sum(axis=-1), 0.0, None)
    e_white = sensor.electrons_at_white(iso)
    electrons = rng.poisson(np.minimum(signal, 4.0) * e_white).astype(np.float64)
    electrons += rng.normal(0.0, sensor.read_noise_e, size=electrons.shape)
    dn = electrons / e_white * sensor.range_dn + sensor.black_level
    dn += rng.normal(0.0, sensor.adc_noise_dn, size=dn.shape)
    return np.clip(np.round(dn), 0, sensor.white_level).astype(np.uint16)
