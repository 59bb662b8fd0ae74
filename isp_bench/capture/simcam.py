"""A simulated camera for the capture rigs, built on :mod:`isp_bench.synth`: it photographs
rendered monitor frames (or any scene irradiance) and writes what a real camera writes, a DNG raw
and a camera JPEG with EXIF, so the rigs, session ingest and pair QA run end to end without hardware.

The optics are known exactly, which is what the tests check QA against: a homography from display
pixels to sensor pixels (``homography``), radial vignetting (``vignetting``: relative fall-off at the
frame corners), a Gaussian lens/OLPF blur, stray light in the dark room, then the synthetic sensor's
shot and read noise (:func:`isp_bench.synth.sensor.expose`) and the synthetic phone look for the JPEG.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage

from isp_bench.images import write_jpeg
from isp_bench.raw.dng import write_dng
from isp_bench.synth import spectral
from isp_bench.synth.generate import DISPLAY
from isp_bench.synth.look import camera_to_srgb_matrix, render_linear, render_look, srgb_decode
from isp_bench.synth.sensor import SensorSpec, expose



@lru_cache(maxsize=4)
def _color_matrix(sensitivities: str) -> np.ndarray:
    return spectral.fit_color_matrix(sensitivities, "D65")


def srgb_to_linear(frame_u8: np.ndarray) -> np.ndarray:
    """sRGB uint8 → linear float (IEC 61966-2-1 decoding)."""
    return srgb_decode(frame_u8.astype(np.float64) / 255.0)


@dataclass
class SimulatedCamera:
    """A tripod camera in a dark room. ``homography`` maps display pixels to sensor pixels."""

    height: int = 256
    width: int = 384
    homography: np.ndarray = field(default_factory=lambda: np.eye(3))
    vignetting: float = 0.3
    blur_sigma: float = 0.6
    stray_light: float = 0.004
    white_level: float = 0.8  # display white → this fraction of saturation at the auto exposure
    sensor: SensorSpec = field(default_factory=lambda: SensorSpec(cfa="RGGB"))
    display: str = DISPLAY
    iso: float = 400.0
    exposure_s: float = 1 / 60
    fnumber: float = 1.8
    focal_length_mm: float = 4.2
    seed: int = 0
    jpeg_quality: int = 92

    def __post_init__(self) -> None:
        self.homography = np.asarray(self.homography, dtype=np.float64)
        self._rng = np.random.default_rng(self.seed)
        self._light = spectral.monitor_light(self.sensor.spectral_sensitivities, self.display)
        # camera response to the sRGB white the colour-managed display shows (its white balance target)
        self._white = self._light.white_camera_rgb

    # -- optics -----------------------------------------------------------------------------------
    def vignette(self) -> np.ndarray:
        yy, xx = np.mgrid[0 : self.height, 0 : self.width].astype(np.float64)
        r2 = ((yy - (self.height - 1) / 2) ** 2 + (xx - (self.width - 1) / 2) ** 2)
        r2 /= ((self.height - 1) / 2) ** 2 + ((self.width - 1) / 2) ** 2
        return 1.0 - self.vignetting * r2

    def monitor_irradiance(self, frame_u8: np.ndarray) -> np.ndarray:
        """Noise-free camera RGB (1.0 = saturation at the auto exposure) of a displayed frame."""
        cam = srgb_to_linear(frame_u8) @ self._light.matrix.T
        cam /= self._white.max()
        # supersample ×2 so fine edges are area-integrated, not point-sampled
        s2 = np.array([[2, 0, 0.5], [0, 2, 0.5], [0, 0, 1]], dtype=np.float64)
        warped = cv2.warpPerspective(cam.astype(np.float32), s2 @ self.homography, (2 * self.width, 2 * self.height),
                                     flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        cam = cv2.resize(warped, (self.width, self.height), interpolation=cv2.INTER_AREA).astype(np.float64)
        cam += self.stray_light * self._white / self._white.max()
        return cam * self.white_level

    def optics(self, camera_rgb: np.ndarray, extra_blur: float = 0.0) -> np.ndarray:
        sigma = float(np.hypot(self.blur_sigma, extra_blur))
        out = camera_rgb * self.vignette()[..., None]
        return ndimage.gaussian_filter(out, sigma=(sigma, sigma, 0)) if sigma > 0 else out

    # -- the shutter ------------------------------------------------------------------------------
    def photograph(self, camera_rgb: np.ndarray, out_dir: str | Path, stem: str, *, when: dt.datetime,
                   exposure_scale: float = 1.0, exif_exposure_s: float | None = None,
                   extra_blur: float = 0.0, white_rgb: np.ndarray | None = None) -> tuple[Path, Path]:
        """Expose noise-free scene irradiance ``camera_rgb`` (sensor grid, 1.0 = saturation at the
        auto exposure) for ``exposure_scale`` × the auto exposure; write ``stem.dng`` and ``stem.jpg``.
        ``exif_exposure_s`` overrides the recorded exposure time (to simulate a mis-set camera)."""
        out_dir = Path(out_dir)
        sensor = self.sensor
        scene = self.optics(camera_rgb, extra_blur) * exposure_scale
        mosaic = expose(scene, sensor, iso=self.iso, rng=self._rng)
        white = self._white if white_rgb is None else np.asarray(white_rgb, dtype=np.float64)
        wb = white[1] / white
        cmat = _color_matrix(sensor.spectral_sensitivities)
        exposure_s = self.exposure_s * exposure_scale if exif_exposure_s is None else exif_exposure_s
        raw_path = out_dir / f"{stem}.dng"
        write_dng(raw_path, mosaic, cfa=sensor.cfa, black_level=sensor.black_level, white_level=sensor.white_level,
                  wb_as_shot=wb, color_matrix=cmat, iso=self.iso, exposure_s=exposure_s, fnumber=self.fnumber,
                  make=sensor.make, model=sensor.name, noise_profile=sensor.noise_profile(self.iso),
                  focal_length_mm=self.focal_length_mm, datetime=when)
        d65 = spectral.camera_response(spectral.illuminant("D65"), sensor.spectral_sensitivities)
        linear = render_linear(np.clip(scene, 0, 1), wb, camera_to_srgb_matrix(cmat, d65))
        srgb = render_look(linear)
        jpg_path = out_dir / f"{stem}.jpg"
        write_jpeg(jpg_path, np.round(srgb * 255).astype(np.uint8), quality=self.jpeg_quality,
                   exif={"Make": sensor.make, "Model": sensor.name, "Orientation": 1, "ISOSpeedRatings": int(self.iso),
                         "ExposureTime": exposure_s, "FNumber": self.fnumber, "FocalLength": self.focal_length_mm,
                         "DateTimeOriginal": when.strftime("%Y:%m:%d %H:%M:%S")})
        return raw_path, jpg_path

    def photograph_frame(self, frame_u8: np.ndarray, out_dir: str | Path, stem: str, *, when: dt.datetime,
                         **kwargs) -> tuple[Path, Path]:
        """Photograph a rendered display frame (sRGB uint8) through the homography."""
        return self.photograph(self.monitor_irradiance(frame_u8), out_dir, stem, when=when, **kwargs)


def scene_irradiance(source: str, shape: tuple[int, int], *, seed: int = 0, illuminant: str = "D65",
                     sensitivities: str = "Nikon 5100 (NPL)", peak: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Camera RGB of a real (reflective) scene for bracket simulations: a bundled photograph's
    reflectances under ``illuminant``, scaled so the 99.5th percentile is ``peak``. Returns
    (irradiance H×W×3, camera white)."""
    from isp_bench.synth import scenes

    light = spectral.reflectance_light(sensitivities, illuminant)
    cam = scenes.frame_photograph(source, shape, np.random.default_rng(seed)) @ light.matrix.T
    cam *= peak / max(float(np.percentile(cam.max(axis=-1), 99.5)), 1e-6)
    return cam, light.white_camera_rgb
