"""DeepIQA (Bosse et al., 2018): a PyTorch port of the authors' Chainer networks and weight loader.

Architecture (``nr_model.py`` / ``fr_model.py`` of the authors' release): ten 3×3 convolutions
(32-32-64-64-128-128-256-256-512-512, padding 1, ReLU) with 2×2 max pooling after every pair, so a
32×32 patch becomes a 512-vector. The quality head is ``fc1`` (→512, ReLU) → ``fc2`` (→1); the
"weighted" models add a patch-weight head ``fc1_a`` → ``fc2_a`` with ``relu(·) + 1e-6``. The
full-reference network concatenates ``(f − f_ref, f, f_ref)`` before the heads. Inputs are
non-overlapping 32×32 patches of the 0–255 RGB image (partial patches at the right and bottom
edges are dropped), exactly as the authors' ``evaluate.py``; the image score is the weighted mean of
patch scores (plain mean for "patchwise" models).

Weights: the authors' trained Chainer HDF5 files ``models/{nr,fr}_{live,tid}_{patchwise,weighted}
.model`` (repository dmaniry/deepIQA) are read from a path the user gives, via the ``weights``
argument or ``ISP_BENCH_DEEPIQA_NR`` / ``ISP_BENCH_DEEPIQA_FR``. Nothing is downloaded. They have
no published hash, so a file is checked by its layout (:func:`chainer_model_problem`): a file that
is not such a model (not HDF5, missing or misshapen layers, the NR model where the FR one belongs)
is one :class:`~isp_bench.metrics.MetricWeightsError` naming the file, what is wrong and the fix.

DeepISP's [1, 5] scale
----------------------
The models regress the training database's scale: LIVE models predict DMOS (0–100, lower is
better), TID2013 models predict MOS (0–9, higher is better). isp-bench maps both linearly onto
[1, 5] with 5 best, clipped: ``1 + 4·MOS/9`` for TID2013 models and ``5 − 4·DMOS/100`` for LIVE
models. This map is isp-bench's definition (DeepISP does not publish one); it is recorded in the
spec's settings and :func:`to_deepisp_scale` exposes it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ._registry import ImageTooSmallError, MetricSpec, as_pair, as_srgb, register_metric
from .weights import WeightFile, register_weight_file

DEEPIQA_NR_ENV = "ISP_BENCH_DEEPIQA_NR"
DEEPIQA_FR_ENV = "ISP_BENCH_DEEPIQA_FR"
PATCH = 32
#: Output channels of the ten convolutions.
_CHANNELS = (32, 32, 64, 64, 128, 128, 256, 256, 512, 512)
DOWNLOAD_HINT = (
    "download the authors' trained Chainer models from the dmaniry/deepIQA repository "
    "(models/{nr,fr}_{live,tid}_{patchwise,weighted}.model) and pass weights=PATH or set "
    f"{DEEPIQA_NR_ENV} / {DEEPIQA_FR_ENV} to the .model file"
)


def __getattr__(name: str):
    """``DeepIQA`` and ``load_chainer_hdf5`` live in ``_deepiqa_net`` (it imports torch), imported
    on first use so that importing the metrics does not import torch."""
    if name in ("DeepIQA", "load_chainer_hdf5"):
        from . import _deepiqa_net

        return getattr(_deepiqa_net, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def chainer_shapes(full_reference: bool, top: str = "weighted") -> dict[str, tuple[int, ...]]:
    """The datasets (``<link>/W``, ``<link>/b``) of the authors' Chainer model and their shapes."""
    shapes: dict[str, tuple[int, ...]] = {}
    c_in = 3
    for i, c in enumerate(_CHANNELS, start=1):
        shapes[f"conv{i}/W"], shapes[f"conv{i}/b"] = (c, c_in, 3, 3), (c,)
        c_in = c
    n_in = 512 * 3 if full_reference else 512
    for suffix in ("", "_a") if top == "weighted" else ("",):
        shapes[f"fc1{suffix}/W"], shapes[f"fc1{suffix}/b"] = (512, n_in), (512,)
        shapes[f"fc2{suffix}/W"], shapes[f"fc2{suffix}/b"] = (1, 512), (1,)
    return shapes


def chainer_root(fh):
    """The HDF5 group holding the links (``conv1``, ...): the file, or one wrapping group (e.g.
    ``predictor/``); ``None`` when there is none."""
    import h5py

    if isinstance(fh.get("conv1"), h5py.Group):
        return fh
    groups = [fh[k] for k in fh if isinstance(fh[k], h5py.Group) and isinstance(fh[k].get("conv1"), h5py.Group)]
    return groups[0] if groups else None


def chainer_model_problem(path: str | os.PathLike, full_reference: bool | None = None) -> str | None:
    """What keeps ``path`` from being one of the authors' DeepIQA Chainer models (of the NR or FR
    kind when ``full_reference`` says which), or ``None`` when it is one. Reads the layout only
    (h5py, no torch)."""
    import h5py

    try:
        fh = h5py.File(path, "r")
    except Exception as exc:  # noqa: BLE001 - h5py raises OSError and others on a non-HDF5 file
        return f"not an HDF5 file ({' '.join(str(exc).split())[:160]}), so not a Chainer .model from dmaniry/deepIQA"
    with fh:
        root = chainer_root(fh)
        if root is None:
            return "an HDF5 file without a 'conv1' group, not a Chainer .model from dmaniry/deepIQA"
        fc1 = root.get("fc1/W")
        if not isinstance(fc1, h5py.Dataset) or fc1.ndim != 2:
            return "dataset 'fc1/W' missing, not a complete DeepIQA model"
        is_fr = fc1.shape[1] == 512 * 3
        if full_reference is not None and full_reference != is_fr:
            kind, wanted = ("full-reference", "no-reference") if is_fr else ("no-reference", "full-reference")
            return f"a {kind} model (fc1 takes {fc1.shape[1]} inputs) where a {wanted} one is needed"
        top = "weighted" if "fc1_a" in root else "patchwise"
        for key, shape in chainer_shapes(is_fr, top).items():
            data = root.get(key)
            if not isinstance(data, h5py.Dataset):
                return f"dataset {key!r} missing, not a complete DeepIQA model"
            if data.shape != shape:
                return f"dataset {key!r} has shape {data.shape}, DeepIQA's is {shape}"
    return None


def _weight_file(kind: str, env: str) -> WeightFile:
    def locations() -> list[tuple[str, Path | None]]:
        value = os.environ.get(env)
        return [(f"${env}", Path(value) if value else None)]

    return register_weight_file(WeightFile(
        name=f"deepiqa-{kind.lower()}",
        used_by=f"DeepIQA {kind} (the authors' Chainer model)",
        filename=f"{kind.lower()}_{{live,tid}}_{{patchwise,weighted}}.model",
        locations=locations,
        how_to_get=DOWNLOAD_HINT + " (no published hash: isp-bench does not download it)",
        check=lambda path: chainer_model_problem(path, full_reference=kind == "FR"),
    ))


DEEPIQA_NR_WEIGHTS = _weight_file("NR", DEEPIQA_NR_ENV)
DEEPIQA_FR_WEIGHTS = _weight_file("FR", DEEPIQA_FR_ENV)


def _resolve(weights, weight_file: WeightFile) -> str:
    return str(weights) if weights else str(weight_file.path())


def extract_patches(image: np.ndarray):
    """Non-overlapping 32×32 patches (row-major) of an H×W×3 [0, 1] image as an N×3×32×32 float32
    torch tensor, 0–255."""
    import torch

    h, w = image.shape[0] // PATCH, image.shape[1] // PATCH
    if h == 0 or w == 0:
        raise ImageTooSmallError(f"DeepIQA needs images of at least 32×32 pixels, got {image.shape[:2]}")
    arr = (image[: h * PATCH, : w * PATCH] * 255.0).astype(np.float32)
    arr = arr.reshape(h, PATCH, w, PATCH, 3).transpose(0, 2, 4, 1, 3).reshape(-1, 3, PATCH, PATCH)
    return torch.from_numpy(np.ascontiguousarray(arr))


def _score(model, x, x_ref, batch: int = 256) -> float:
    import torch

    qs, ws = [], []
    with torch.no_grad():
        for i in range(0, x.shape[0], batch):
            q, a = model(x[i : i + batch], None if x_ref is None else x_ref[i : i + batch])
            qs.append(q.double())
            ws.append(a.double())
    q, a = torch.cat(qs), torch.cat(ws)
    return float((q * a).sum() / a.sum())


def to_deepisp_scale(raw: float, trained_on: str) -> float:
    """Map a raw DeepIQA prediction onto [1, 5] (5 best): TID2013 MOS 0–9 → ``1 + 4·MOS/9``,
    LIVE DMOS 0–100 → ``5 − 4·DMOS/100``; clipped to [1, 5]."""
    if trained_on == "tid":
        v = 1.0 + 4.0 * raw / 9.0
    elif trained_on == "live":
        v = 5.0 - 4.0 * raw / 100.0
    else:
        raise ValueError(f"trained_on must be 'tid' or 'live', got {trained_on!r}")
    return float(min(5.0, max(1.0, v)))


def _trained_on(path: str) -> str:
    name = Path(path).name.lower()
    return "live" if "live" in name else "tid"


def deepiqa_nr(image, *, weights: str | None = None, model=None, raw: bool = False) -> float:
    """No-reference DeepIQA score of an sRGB image on DeepISP's [1, 5] scale (``raw=True``: the
    network's own scale).

    References
    ----------
    .. [1] S. Bosse, D. Maniry, K.-R. Müller, T. Wiegand, W. Samek, "Deep neural networks for
       no-reference and full-reference image quality assessment", IEEE TIP 27(1), 2018.
    """
    img = as_srgb(image)
    path = None
    if model is None:
        from ._deepiqa_net import cached_model

        path = _resolve(weights, DEEPIQA_NR_WEIGHTS)
        model = cached_model(path, False)
    value = _score(model, extract_patches(img), None)
    if raw:
        return value
    return to_deepisp_scale(value, _trained_on(path) if path else "tid")


def deepiqa_fr(pred, target, *, weights: str | None = None, model=None, raw: bool = False) -> float:
    """Full-reference DeepIQA score of ``pred`` against ``target`` on [1, 5] (``raw=True``: the
    network's own scale). See :func:`deepiqa_nr`."""
    p, t = as_pair(pred, target)
    path = None
    if model is None:
        from ._deepiqa_net import cached_model

        path = _resolve(weights, DEEPIQA_FR_WEIGHTS)
        model = cached_model(path, True)
    value = _score(model, extract_patches(p), extract_patches(t))
    if raw:
        return value
    return to_deepisp_scale(value, _trained_on(path) if path else "tid")


_SETTINGS = {
    "patches": "non-overlapping 32x32, 0-255 RGB, partial edge patches dropped",
    "pooling": "weighted mean (patchwise models: mean)",
    "scale": "[1, 5], 5 best: TID MOS 1+4*MOS/9, LIVE DMOS 5-4*DMOS/100, clipped",
}
DEEPIQA_NR = register_metric(
    MetricSpec(
        name="deepiqa_nr",
        fn=deepiqa_nr,
        reference="Bosse et al. 2018 (IEEE TIP); PyTorch port of dmaniry/deepIQA nr_model, authors' Chainer weights",
        settings={**_SETTINGS, "weights_env": DEEPIQA_NR_ENV},
        higher_is_better=True,
        full_reference=False,
    )
)
DEEPIQA_FR = register_metric(
    MetricSpec(
        name="deepiqa_fr",
        fn=deepiqa_fr,
        reference="Bosse et al. 2018 (IEEE TIP); PyTorch port of dmaniry/deepIQA fr_model, authors' Chainer weights",
        settings={**_SETTINGS, "weights_env": DEEPIQA_FR_ENV},
        higher_is_better=True,
        full_reference=True,
    )
)
