"""The DeepIQA networks (Bosse et al., 2018) in PyTorch and the loader of the authors' Chainer
weights; imported by :mod:`isp_bench.metrics.deepiqa` only when a DeepIQA score is computed (it
imports torch)."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ._registry import MetricError, MetricWeightsError
from .deepiqa import _CHANNELS, DOWNLOAD_HINT, chainer_model_problem, chainer_root


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
        raise MetricWeightsError(f"{p}: DeepIQA weights not found; {DOWNLOAD_HINT}")
    problem = chainer_model_problem(p, full_reference)
    if problem is not None:
        raise MetricWeightsError(f"{p}: wrong file for DeepIQA: {problem}. Fix: {DOWNLOAD_HINT}")
    with h5py.File(p, "r") as fh:
        root = chainer_root(fh)
        is_fr = root["fc1/W"].shape[1] == 512 * 3
        model = DeepIQA(full_reference=is_fr, top="weighted" if "fc1_a" in root else "patchwise")
        state = {}
        for name in model.state_dict():  # every dataset is there with its shape (checked above)
            link, kind = name.split(".")
            state[name] = torch.from_numpy(np.asarray(root[f"{link}/{'W' if kind == 'weight' else 'b'}"],
                                                      dtype=np.float32))
    model.load_state_dict(state)
    return model.eval()


@functools.lru_cache(maxsize=4)
def cached_model(path: str, full_reference: bool) -> DeepIQA:
    return load_chainer_hdf5(path, full_reference=full_reference)
