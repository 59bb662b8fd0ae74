"""Generate the embedded default dataset: a physically based synthetic camera written as real
DNG raw files with phone-ISP JPEG targets, linear 16-bit PNG restoration targets and low-light
(quarter-exposure) raws, in an S7-ISP-like layout.

Layout written under ``out``::

    README.md                 what this is, how it was made
    synth.json                generator version, seed, sensor, spectral data, per-scene facts
    scenes.csv                scene, kind, source, light, iso, exposure_s, orientation, split
    <scene>/medium_exposure.dng         well-exposed raw
    <scene>/short_exposure.dng          the same scene at 1/4 of the exposure, same ISO and f-number
    <scene>/medium_exposure.jpg         the phone-ISP rendering (8-bit sRGB JPEG with EXIF)
    <scene>/medium_exposure_linear.png  linear sRGB restoration target (16-bit PNG)

Everything is a deterministic function of ``seed`` and the scene index: the same arguments give
byte-identical files on every machine, whatever its CPU features, BLAS kernels or libm (every float
that reaches a quantised value or a metadata field is computed by :mod:`isp_bench.synth.exactmath`
or by IEEE-exact elementwise arithmetic).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from isp_bench import __version__
from isp_bench.errors import IspBenchError
from isp_bench.parallel import process_pool
from isp_bench.datasets.synth import FILES, LOW_LIGHT_RATIO
from isp_bench.files import atomic_write_text
from isp_bench.images import write_jpeg, write_png
from isp_bench.raw.dng import write_dng
from isp_bench.synth import scenes as scene_lib
from isp_bench.synth import exactmath, spectral
from isp_bench.synth.look import camera_to_srgb_matrix, render_linear, render_look
from isp_bench.synth.sensor import SensorSpec, expose

GENERATOR_VERSION = 6
"""6: a colour dead-leaves chart joins the sources (every source once per kind in the default 24 scenes);
5: splits by source photograph, every held-out illuminant seen in training (same images otherwise);
4: splits stratified by scene kind; 3: same bits on every machine (exactmath); 2: monitor scenes
white-balanced on displayed sRGB white."""
DISPLAY = "Apple Studio Display"
REAL_ILLUMINANTS = ("D65", "D50", "A", "FL2", "FL11", "D75")
ISO_STOPS = (100, 200, 400, 800, 1600, 3200)
EXPOSURE_CONSTANT = 2.5  # exposure_s · lux · ISO/100 for a correct exposure
SPLIT_FRACTIONS = (0.7, 0.15, 0.15)  # train, val, test (see assign_splits)
MIN_SIDE = 32  # the smallest sensor side generated (the tests' tiniest set is 32×48)


@dataclass(frozen=True)
class SynthConfig:
    """Everything that determines the generated dataset."""

    scenes: int = 24
    seed: int = 0
    height: int = 384
    width: int = 512
    sensor: SensorSpec = field(default_factory=SensorSpec)
    jpeg_quality: int = 95

    def __post_init__(self):
        if self.scenes < 1:
            raise IspBenchError(f"scenes {self.scenes}: a synthetic dataset needs at least 1 scene (2 pairs each)")
        for name in ("height", "width"):
            size = getattr(self, name)
            if size < MIN_SIDE or size % 2:
                raise IspBenchError(f"{name} {size}: sensor sides are even (whole 2×2 colour-filter tiles) and at "
                                    f"least {MIN_SIDE} pixels")


def scene_plan(config: SynthConfig, index: int) -> dict:
    """The random choices for one scene (a pure function of the seed and index)."""
    rng = np.random.default_rng([config.seed, index, 0])
    kind = "monitor" if index % 2 == 0 else "real"
    source = scene_lib.SOURCES[(index // 2 + config.seed) % len(scene_lib.SOURCES)]
    light = DISPLAY if kind == "monitor" else REAL_ILLUMINANTS[int(rng.integers(len(REAL_ILLUMINANTS)))]
    lux = float(exactmath.exp(rng.uniform(exactmath.log(3.0), exactmath.log(3000.0))))  # same bits everywhere
    iso = next((i for i in ISO_STOPS if EXPOSURE_CONSTANT * 100 / (lux * i) <= 1 / 30), ISO_STOPS[-1])
    exposure_s = EXPOSURE_CONSTANT * 100 / (lux * iso)
    return {
        "scene": f"{index:04d}_{kind}_{source}",
        "index": index,
        "kind": kind,
        "source": source,
        "light": light,
        "lux": round(lux, 3),
        "iso": iso,
        "exposure_s": exposure_s,
        "short_exposure_s": exposure_s / LOW_LIGHT_RATIO,
        "fnumber": 1.8,
        "focal_length_mm": 4.2,
        "peak_level": float(rng.uniform(0.55, 1.05)),
        "portrait": bool(rng.random() < 1 / 6),
        "datetime": (dt.datetime(2026, 1, 1, 12, 0, 0) + dt.timedelta(minutes=7 * index)).isoformat(),
        "content_seed": int(rng.integers(2**31)),
        "noise_seed": int(rng.integers(2**31)),
    }


def assign_splits(plans: list[dict]) -> dict[str, str]:
    """train/val/test of each scene of ``plans`` (:func:`scene_plan`), by source photograph: the scenes
    of one source (its monitor and real-world versions, and any repeat) share a split, so no test
    content is trained on, and every split holds both kinds. Sources are ranked by sha256(source name);
    test, then val, takes sources from the end of that ranking while that brings its scene count nearer
    its :data:`SPLIT_FRACTIONS` share, skipping a source lit by an illuminant that no source left in
    train is lit by (every illuminant of a held-out scene is seen in training) and keeping at least one
    source in train. Stable, and independent of listing order."""
    groups: dict[str, list[dict]] = {}
    for plan in plans:
        groups.setdefault(plan["source"], []).append(plan)
    ranked = sorted(groups, key=lambda source: hashlib.sha256(source.encode()).digest())
    lights = {source: {p["light"] for p in groups[source]} for source in ranked}
    n = len(plans)
    n_val = int(round(SPLIT_FRACTIONS[1] * n))
    quotas = {"test": n - int(round(SPLIT_FRACTIONS[0] * n)) - n_val, "val": n_val}
    split = dict.fromkeys(ranked, "train")
    for name, quota in quotas.items():
        taken = 0
        for source in reversed(ranked):
            train = [other for other in ranked if split[other] == "train" and other != source]
            size = len(groups[source])
            if (split[source] != "train" or not train or abs(taken + size - quota) > abs(taken - quota)
                    or not lights[source] <= set().union(*(lights[other] for other in train))):
                continue
            split[source] = name
            taken += size
    return {plan["scene"]: split[plan["source"]] for plan in plans}


def _scene_camera_rgb(config: SynthConfig, plan: dict) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free camera RGB irradiance of the scene (H×W×3, relative units) and the camera's
    response to the scene white."""
    sensor_name = config.sensor.spectral_sensitivities
    rng = np.random.default_rng(plan["content_seed"])
    shape = (config.height, config.width)
    if plan["kind"] == "monitor":
        light = spectral.monitor_light(sensor_name, DISPLAY)
    else:
        light = spectral.reflectance_light(sensor_name, plan["light"])
    if plan["source"] == scene_lib.COLORCHECKER:
        layout = scene_lib.colorchecker_layout(shape, rng)
        if plan["kind"] == "monitor":
            patches = exactmath.matmul(np.clip(spectral.colorchecker_srgb_linear("D65"), 0, 1), light.matrix.T)
        else:
            patches = spectral.colorchecker_camera_rgb(sensor_name, plan["light"])
        surround = 0.03 * light.white_camera_rgb
        camera_rgb = np.where(layout[..., None] >= 0, patches[np.maximum(layout, 0)], surround)
    elif plan["source"] == scene_lib.DEAD_LEAVES:
        camera_rgb = exactmath.apply_matrix(light.matrix, scene_lib.dead_leaves(shape, rng))
    else:
        camera_rgb = exactmath.apply_matrix(light.matrix, scene_lib.frame_photograph(plan["source"], shape, rng))
    # lens and optical low-pass filter
    camera_rgb = exactmath.gaussian_filter(camera_rgb, (0.6, 0.6, 0))
    return camera_rgb, light.white_camera_rgb


def _write_scene(config: SynthConfig, plan: dict, out: Path, color_matrix: np.ndarray) -> dict:
    sensor = config.sensor
    folder = out / plan["scene"]
    camera_rgb, white = _scene_camera_rgb(config, plan)
    camera_rgb = camera_rgb * (plan["peak_level"] / max(np.percentile(camera_rgb.max(axis=-1), 99.5), 1e-6))
    wb = white[1] / white
    noise_rng = np.random.default_rng(plan["noise_seed"])
    orientation = 6 if plan["portrait"] else 1
    common = dict(
        cfa=sensor.cfa, black_level=sensor.black_level, white_level=sensor.white_level, wb_as_shot=wb,
        color_matrix=color_matrix, iso=plan["iso"], fnumber=plan["fnumber"], make=sensor.make,
        model=sensor.name, noise_profile=sensor.noise_profile(plan["iso"]), orientation=orientation,
        focal_length_mm=plan["focal_length_mm"], datetime=dt.datetime.fromisoformat(plan["datetime"]),
    )
    for key, scale, exposure in (("raw", 1.0, plan["exposure_s"]),
                                 ("raw_short", 1 / LOW_LIGHT_RATIO, plan["short_exposure_s"])):
        mosaic = expose(camera_rgb * scale, sensor, iso=plan["iso"], rng=noise_rng)
        write_dng(folder / FILES[key], mosaic, exposure_s=exposure, **common)

    d65_white = spectral.camera_response(spectral.illuminant("D65"), sensor.spectral_sensitivities)
    linear = render_linear(camera_rgb, wb, camera_to_srgb_matrix(color_matrix, d65_white))
    srgb = render_look(linear)
    if plan["portrait"]:  # the phone stores its JPEG upright; the raw stays in sensor orientation
        linear, srgb = np.rot90(linear, -1), np.rot90(srgb, -1)
    write_png(folder / FILES["linear_target"], np.round(np.clip(linear, 0, 1) * 65535).astype(np.uint16))
    write_jpeg(
        folder / FILES["target"], np.round(srgb * 255).astype(np.uint8), quality=config.jpeg_quality,
        exif={"Make": sensor.make, "Model": sensor.name, "Orientation": 1, "ISOSpeedRatings": int(plan["iso"]),
              "ExposureTime": plan["exposure_s"], "FNumber": plan["fnumber"],
              "DateTimeOriginal": dt.datetime.fromisoformat(plan["datetime"]).strftime("%Y:%m:%d %H:%M:%S")},
    )
    return plan


def _write_scene_job(args) -> dict:
    return _write_scene(*args)


def generate(out: str | os.PathLike, config: SynthConfig = SynthConfig(), *, workers: int | None = None,
             progress: bool = True) -> Path:
    """Write the synthetic dataset to ``out`` and return its path.

    Scenes already complete from an earlier run with the same config are kept (an interrupted
    generation resumes); the dataset-level files are written last, atomically.
    """
    from tqdm import tqdm

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise IspBenchError(f"{out}: is a file; give the folder to write the synthetic dataset to")
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / "synth.json"
    config_dict = _config_dict(config)
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("config") != config_dict or meta.get("generator_version") != GENERATOR_VERSION:
            raise IspBenchError(f"{out} holds a synthetic dataset made with another config or generator version "
                                  f"({meta.get('generator_version')}, this is {GENERATOR_VERSION}); choose an empty "
                                  "folder or delete this one")
    color_matrix = spectral.fit_color_matrix(config.sensor.spectral_sensitivities, "D65")
    plans = [scene_plan(config, i) for i in range(config.scenes)]
    todo = [p for p in plans if not all((out / p["scene"] / f).exists() for f in FILES.values())]
    jobs = [(config, p, out, color_matrix) for p in todo]
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs) or 1))
    bar = tqdm(total=len(plans), initial=len(plans) - len(todo), desc="synth scenes", unit="scene",
               disable=not progress)
    if workers == 1:
        for job in jobs:
            _write_scene_job(job)
            bar.update()
    else:
        with process_pool(workers, preload=("isp_bench.synth.generate",)) as pool:
            for _ in pool.map(_write_scene_job, jobs):
                bar.update()
    bar.close()

    splits = assign_splits(plans)
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    columns = ["scene", "kind", "source", "light", "iso", "exposure_s", "short_exposure_s", "orientation", "split"]
    writer.writerow(columns)
    for p in plans:
        writer.writerow([p["scene"], p["kind"], p["source"], p["light"], p["iso"], repr(p["exposure_s"]),
                         repr(p["short_exposure_s"]), 6 if p["portrait"] else 1, splits[p["scene"]]])
    atomic_write_text(out / "scenes.csv", rows.getvalue())
    meta = {
        "generator": "isp_bench.synth", "generator_version": GENERATOR_VERSION, "isp_bench_version": __version__,
        "config": config_dict, "display": DISPLAY,
        "color_matrix_camera_to_xyz_d65": color_matrix.round(12).tolist(),
        "files": FILES, "scenes": plans,
    }
    atomic_write_text(out / "README.md", _readme(config))
    atomic_write_text(meta_path, json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return out


def _config_dict(config: SynthConfig) -> dict:
    return json.loads(json.dumps(asdict(config)))


def _readme(config: SynthConfig) -> str:
    s = config.sensor
    return f"""# isp-bench synthetic camera dataset

Generated by `isp-bench synth --scenes {config.scenes} --seed {config.seed}` (isp_bench.synth, generator
version {GENERATOR_VERSION}). Deterministic: the same command writes byte-identical files on any machine
(with the same versions of the Python packages that encode the files).

- Sensor: "{s.make} {s.name}", spectral sensitivities of the {s.spectral_sensitivities} (colour-science),
  {s.cfa} Bayer, {s.bits}-bit, black level {s.black_level}, full well {s.full_well_e:.0f} e- at ISO {s.base_iso:.0f},
  read noise {s.read_noise_e} e- + {s.adc_noise_dn} DN; DNG NoiseProfile per ISO.
- Scenes ({config.height}×{config.width}): scikit-image's bundled photographs, ColorChecker charts (N. Ohta
  reflectances) and colour dead-leaves charts (saturated hues across the gamut). "monitor" scenes are sRGB
  shown on a colour-managed {DISPLAY}; "real" scenes are reflectances under CIE illuminants
  {', '.join(REAL_ILLUMINANTS)}.
- Per scene: `medium_exposure.dng` (well exposed), `short_exposure.dng` (1/{LOW_LIGHT_RATIO} exposure, same ISO),
  `medium_exposure.jpg` (phone-ISP look, stored upright: portrait scenes are rotated against the raw, whose
  DNG Orientation is 6), `medium_exposure_linear.png` (linear sRGB restoration target, 16-bit).
- `scenes.csv` holds the official split: by source photograph (a photograph's monitor and real-world scenes share a
  split, so no test content is trained on), ranked by sha256 of its name, every held-out illuminant also in train.
"""
