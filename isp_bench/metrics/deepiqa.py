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
argument or ``ISP_BENCH_DEEPIQA_NR`` / ``ISP_BENCH_DEEPIQA_FR``. Nothing is downloaded.

DeepISP's [1, 5] scale
----------------------
The models regress the training database's scale: LIVE models predict DMOS (0–100, lower is
better), TID2013 models predict MOS (0–9, higher is better). isp-bench maps both linearly onto
[1, 5] with 5 best, clipped: ``1 + 4·MOS/9`` for TID2013 models and ``5 − 4·DMOS/100`` for LIVE
models. This map is isp-bench's definition (DeepISP does not publish one); it is recorded in the
spec's settings and :func:`to_deepisp_scale` exposes it.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ._registry import MetricError, MetricSpec, MetricWeightsError, as_pair, as_srgb, register_metric

DEEPIQA_NR_ENV = "ISP_BENCH_DEEPIQA_NR"
DEEPIQA_FR_ENV = "ISP_BENCH_DEEPIQA_FR"
PATCH = 32
_CHANNELS = (32, 32, 64, 64, 128, 128, 256, 256, 512, 512)
_DOWNLOAD_HINT = (
    "download the authors' trained Chainer models from the dmaniry/deepIQA repository "
    "(models/{nr,fr}_{live,tid}_{patchwise,weighted}.model) and pass weights=PATH or set "
    f"{DEEPIQA_NR_ENV} / {DEEPIQA_FR_ENV} to the .model file"
)


class DeepIQA(nn.Module):
    """Bosse et al.'s NR or FR network; parameter names follow the Chainer links."""

    def __init__(self, full_reference: bool = False, top: str = "weighted"):
        super().__init__()
        if top not in ("weighted", "patchwise"):
            raise ValueError(f"top must be 'weighted' or 'patchwise', got {top!r}")
        self.full_reference = full_reference
        self.top = top
        c_in = 3
        for i, c in enumerate(_CHANNELS, start=1):
            setattr(self, f"conv{i}", nn.Conv2d(c_in, c, 3, padding=1))
            c_in = c
        n_in = 512 * 3 if full_reference else 512
        self.fc1 = nn.Linear(n_in, 512)
        self.fc2 = nn.Linear(512, 1)
        if top == "weighted":
            self.fc1_a = nn.Linear(n_in, 512)
            self.fc2_a = nn.Linear(512, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """N×3×32×32 patches (0–255 RGB) → N×512."""
        h = x
        for i in range(1, 11):
            h = torch.relu(getattr(self, f"conv{i}")(h))
            if i % 2 == 0:
                h = nn.functional.max_pool2d(h, 2)
        return h.flatten(1)

    def forward(self, x: torch.Tensor, x_ref: torch.Tensor | None = None):
        """Per-patch (score, weight), each of shape N."""
        h = self.features(x)
        if self.full_reference:
            if x_ref is None:
                raise MetricError("the full-reference DeepIQA model needs reference patches")
            h_ref = self.features(x_ref)
            h = torch.cat((h - h_ref, h, h_ref), dim=1)
        q = self.fc2(torch.relu(self.fc1(h)))[:, 0]
        if self.top == "weighted":
            a = torch.relu(self.fc2_a(torch.relu(self.fc1_a(h))))[:, 0] + 1e-6
        else:
            a = torch.ones_like(q)
        return q, a


def load_chainer_hdf5(path: str | os.PathLike, *, full_reference: bool | None = None) -> DeepIQA:
    """Build a :class:`DeepIQA` from the authors' Chainer HDF5 file (datasets ``<link>/W``, ``<link>/b``).

    The NR/FR kind and the head ("weighted" when ``fc1_a`` is present) are read from the file.
    """
    import h5py

    p = Path(path)
    if not p.is_file():
        raise MetricWeightsError(f"{p}: DeepIQA weights not found; {_DOWNLOAD_HINT}")
    try:
        fh = h5py.File(p, "r")
    except OSError as exc:
        raise MetricWeightsError(f"{p}: not an HDF5 file ({exc}); expected a Chainer .model from dmaniry/deepIQA") from exc
    with fh:
        root = fh
        if "conv1" not in root:  # tolerate one wrapping group (e.g. 'predictor/')
            groups = [k for k in fh if isinstance(fh[k], h5py.Group) and "conv1" in fh[k]]
            if not groups:
                raise MetricWeightsError(f"{p}: no 'conv1/W' dataset; not a deepIQA Chainer model")
            root = fh[groups[0]]
        fc1_in = root["fc1/W"].shape[1]
        is_fr = fc1_in == 512 * 3
        if full_reference is not None and full_reference != is_fr:
            kind = "full-reference" if is_fr else "no-reference"
            raise MetricWeightsError(f"{p}: this is a {kind} model (fc1 takes {fc1_in} inputs)")
        top = "weighted" if "fc1_a" in root else "patchwise"
        model = DeepIQA(full_reference=is_fr, top=top)
        state = {}
        for name, param in model.state_dict().items():
            link, kind = name.split(".")
            key = f"{link}/{'W' if kind == 'weight' else 'b'}"
            if key not in root:
                raise MetricWeightsError(f"{p}: dataset {key!r} missing")
            arr = np.asarray(root[key], dtype=np.float32)
            if arr.shape != tuple(param.shape):
                raise MetricWeightsError(f"{p}: {key} has shape {arr.shape}, expected {tuple(param.shape)}")
            state[name] = torch.from_numpy(arr)
    model.load_state_dict(state)
    return model.eval()


@functools.lru_cache(maxsize=4)
def _cached_model(path: str, full_reference: bool) -> DeepIQA:
    return load_chainer_hdf5(path, full_reference=full_reference)


def _resolve(weights, env: str, kind: str) -> str:
    path = weights or os.environ.get(env)
    if not path:
        raise MetricWeightsError(f"DeepIQA {kind} has no weights: {_DOWNLOAD_HINT}")
    return str(path)


def extract_patches(image: np.ndarray) -> torch.Tensor:
    """Non-overlapping 32×32 patches (row-major) of an H×W×3 [0, 1] image as N×3×32×32, 0–255."""
    h, w = image.shape[0] // PATCH, image.shape[1] // PATCH
    if h == 0 or w == 0:
        raise MetricError(f"DeepIQA needs images of at least 32×32 pixels, got {image.shape[:2]}")
    arr = (image[: h * PATCH, : w * PATCH] * 255.0).astype(np.float32)
    arr = arr.reshape(h, PATCH, w, PATCH, 3).transpose(0, 2, 4, 1, 3).reshape(-1, 3, PATCH, PATCH)
    return torch.from_numpy(np.ascontiguousarray(arr))


def _score(model: DeepIQA, x: torch.Tensor, x_ref: torch.Tensor | None, batch: int = 256) -> float:
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


def deepiqa_nr(image, *, weights: str | None = None, model: DeepIQA | None = None, raw: bool = False) -> float:
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
        path = _resolve(weights, DEEPIQA_NR_ENV, "NR")
        model = _cached_model(path, False)
    value = _score(model, extract_patches(img), None)
    if raw:
        return value
    return to_deepisp_scale(value, _trained_on(path) if path else "tid")


def deepiqa_fr(pred, target, *, weights: str | None = None, model: DeepIQA | None = None, raw: bool = False) -> float:
    """Full-reference DeepIQA score of ``pred`` against ``target`` on [1, 5] (``raw=True``: the
    network's own scale). See :func:`deepiqa_nr`."""
    p, t = as_pair(pred, target)
    path = None
    if model is None:
        path = _resolve(weights, DEEPIQA_FR_ENV, "FR")
        model = _cached_model(path, True)
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
