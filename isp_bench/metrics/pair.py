"""Shared per-pair work: the kernels behind the full-reference metrics and the per-pair cache.

:class:`PairWork` holds one (pred, target) pair, validated once, and computes on demand (and
caches) what several metrics share: the 8-bit grey, the full-resolution SSIM statistics that MS-SSIM
reuses, one sRGB decoding for ΔE*ab 1976 and S-CIELAB. It names no metric: each metric's spec says
what it asks of it (``MetricSpec.on_pair`` and ``MetricSpec.plan``). Every production SSIM, ΔE and
S-CIELAB number goes through here, so :func:`~isp_bench.metrics.score.score_pair` gives exactly
the numbers of the individual metric calls.

Every 12 MP full-frame float64 temporary costs ~0.3 GB of memory traffic, so the metrics here run
over horizontal strips of rows that stay in cache, with separable filters written as small dense
matrix products (banded "valid" correlation matrices; BLAS does the arithmetic), and strips spread
over a few worker threads (numpy, scipy and BLAS release the GIL). Partial sums are float64 and
combined in strip order, so results do not depend on the number of threads.

"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

from ._registry import ImageTooSmallError, as_pair, rgb2gray_matlab_uint8

#: Environment variable capping the worker threads of the metric kernels (default: min(2, CPUs)).
THREADS_ENV = "ISP_BENCH_METRIC_THREADS"

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def n_threads() -> int:
    """Worker threads for strip-parallel work: ``$ISP_BENCH_METRIC_THREADS`` or min(2, CPU count)."""
    env = os.environ.get(THREADS_ENV)
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass
    return max(1, min(2, os.cpu_count() or 1))


def strip_map(fn: Callable[[int, int], object], n_rows: int, rows: int) -> list:
    """``[fn(r0, r1) for each strip of `rows` rows]``, in order, spread over :func:`n_threads`."""
    global _POOL
    strips = [(r0, min(r0 + rows, n_rows)) for r0 in range(0, n_rows, rows)]
    threads = n_threads()
    if threads == 1 or len(strips) < 2 or threading.current_thread().name.startswith("isp-bench-metrics"):
        return [fn(a, b) for a, b in strips]
    with _POOL_LOCK:
        if _POOL is None or _POOL._max_workers != threads:  # noqa: SLF001
            _POOL = ThreadPoolExecutor(threads, thread_name_prefix="isp-bench-metrics")
        pool = _POOL
    return list(pool.map(lambda s: fn(*s), strips))


# ---------------------------------------------------------------------------------------------
# SSIM statistics (Wang et al.: 11-tap Gaussian, σ = 1.5, valid region), float32 filtering


def gauss_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Normalised 1-D Gaussian window (float64; cast to float32 for filtering)."""
    coords = np.arange(size, dtype=np.float64) - size // 2
    g = np.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


_WIN32 = gauss_window().astype(np.float32)
SSIM_ROWS = 16


def _sym_fir_rows(src: np.ndarray, k: np.ndarray, n: int, out: np.ndarray, tmp: np.ndarray) -> None:
    """``out[i] = Σ_j k[j] src[i + j]`` along axis −2 for a symmetric odd-length ``k`` (in cache)."""
    half = k.size // 2
    np.multiply(src[..., half : half + n, :], k[half], out=out)
    for j in range(half):
        np.add(src[..., j : j + n, :], src[..., k.size - 1 - j : k.size - 1 - j + n, :], out=tmp)
        tmp *= k[j]
        out += tmp


def _sym_fir_cols(src: np.ndarray, k: np.ndarray, n: int, out: np.ndarray, tmp: np.ndarray) -> None:
    """As :func:`_sym_fir_rows` along the last axis."""
    half = k.size // 2
    np.multiply(src[..., half : half + n], k[half], out=out)
    for j in range(half):
        np.add(src[..., j : j + n], src[..., k.size - 1 - j : k.size - 1 - j + n], out=tmp)
        tmp *= k[j]
        out += tmp


def ssim_means(x: np.ndarray, y: np.ndarray, data_range: float = 1.0) -> tuple[float, float]:
    """(mean SSIM, mean contrast-structure term) of two 2-D images over the valid region.

    Gaussian 11/1.5 window, K = (0.01, 0.03), population covariance. The five local statistics are
    filtered in float32 (separable, in row strips that stay in cache) on data centred at
    ``data_range / 2``, which limits float32 cancellation in ``E[x²] − μ²`` (the variance terms do
    not depend on the offset); the SSIM map is formed in float64 and summed strip by strip.
    """
    h, w = x.shape
    if min(h, w) < 11:
        raise ImageTooSmallError(f"SSIM needs images of at least 11×11 pixels, got {h}×{w}")
    off = np.float32(0.5 * data_range)
    xs = np.asarray(x, dtype=np.float32)
    ys = np.asarray(y, dtype=np.float32)
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    c = 0.5 * data_range
    ho, wo = h - 10, w - 10
    k = _WIN32

    def strip(r0: int, r1: int) -> tuple[float, float]:
        n = r1 - r0
        st = np.empty((5, n + 10, w), dtype=np.float32)
        xc = np.subtract(xs[r0 : r1 + 10], off, out=st[0])
        yc = np.subtract(ys[r0 : r1 + 10], off, out=st[1])
        np.multiply(xc, xc, out=st[2])
        np.multiply(yc, yc, out=st[3])
        np.multiply(xc, yc, out=st[4])
        v = np.empty((5, n, w), dtype=np.float32)
        _sym_fir_rows(st, k, n, v, np.empty_like(v))
        f = np.empty((5, n, wo), dtype=np.float32)
        _sym_fir_cols(v, k, wo, f, np.empty_like(f))
        m1, m2, e11, e22, e12 = f
        p = np.multiply(m1, m2, dtype=np.float64)
        q = np.multiply(m1, m1, dtype=np.float64)
        q += np.multiply(m2, m2, dtype=np.float64)
        num2 = np.subtract(e12, p, dtype=np.float64)
        num2 *= 2.0
        num2 += c2
        den2 = np.add(e11, e22, dtype=np.float64)
        den2 -= q
        den2 += c2
        cs = np.divide(num2, den2, out=num2)
        s = np.add(m1, m2, dtype=np.float64)  # 2c(μx + μy − 2c) + 2c² + C1 with centred μ
        s *= 2.0 * c
        s += 2.0 * c * c + c1
        p *= 2.0
        p += s
        q += s
        lum = np.divide(p, q, out=p)
        return float(np.einsum("ij,ij->", lum, cs)), float(cs.sum())

    parts = strip_map(strip, ho, SSIM_ROWS)
    n = ho * wo
    return math.fsum(p[0] for p in parts) / n, math.fsum(p[1] for p in parts) / n


MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def ms_ssim_plane(x: np.ndarray, y: np.ndarray, level1: tuple[float, float] | None = None) -> float:
    """pytorch-msssim's MS-SSIM of two 2-D float32 planes (data range 1, 5 scales, 2×2 average
    pooling with zero padding of odd sides, relu on each term); ``level1`` reuses the full-resolution
    :func:`ssim_means`."""
    import torch

    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None, None]
    yt = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))[None, None]
    terms = []
    for level in range(len(MS_WEIGHTS)):
        if level == 0 and level1 is not None:
            s, cs = level1
        else:
            s, cs = ssim_means(xt[0, 0].numpy(), yt[0, 0].numpy())
        if level < len(MS_WEIGHTS) - 1:
            terms.append(max(cs, 0.0))
            padding = [d % 2 for d in xt.shape[2:]]
            with torch.no_grad():
                xt = torch.nn.functional.avg_pool2d(xt, kernel_size=2, padding=padding)
                yt = torch.nn.functional.avg_pool2d(yt, kernel_size=2, padding=padding)
    terms.append(max(s, 0.0))
    return math.prod(t**wgt for t, wgt in zip(terms, MS_WEIGHTS))


# ---------------------------------------------------------------------------------------------
# colour: one sRGB decoding for ΔE*ab 1976 and S-CIELAB, strip by strip

COLOR_ROWS = 64


def color_sums(p: np.ndarray, t: np.ndarray, *, de76: bool, scielab_spd: float | None) -> dict:
    """Sums over pixels of ΔE*ab 1976 (``de76``, ``de76_sq``) and of the S-CIELAB ΔE map
    (``scielab``) from one sRGB decoding of each image.

    ``p`` and ``t`` are validated H×W×3 float64 sRGB images. S-CIELAB filtering runs in the DCT-II
    domain (exact for symmetric kernels with edge-including reflection), which needs the kernel to
    be shorter than both image sides; the caller uses the direct reference path otherwise.
    """
    import scipy.fft

    from isp_bench.colorimetry import D65_WHITE_XYZ_100, SRGB_TO_XYZ, srgb_decode

    from . import color, spatial_cielab as sc

    h, w, _ = p.shape
    opp = np.empty((2, 3, h, w)) if scielab_spd is not None else None

    def decode(r0: int, r1: int) -> dict:
        lin = [srgb_decode(img[r0:r1]) for img in (p, t)]
        out = {}
        if de76:
            lab = [color.xyz_to_lab(li @ SRGB_TO_XYZ.T) for li in lin]
            d = lab[0] - lab[1]
            m = np.sqrt(np.einsum("...c,...c->...", d, d))
            out["de76"] = float(m.sum())
            out["de76_sq"] = float(np.einsum("ij,ij->", m, m))
        if opp is not None:
            for i, li in enumerate(lin):
                o = (100.0 * (li @ SRGB_TO_XYZ.T)) @ sc.XYZ_TO_OPP.T
                opp[i, :, r0:r1] = o.transpose(2, 0, 1)
        return out

    parts = strip_map(decode, h, COLOR_ROWS)
    res = {k: math.fsum(part[k] for part in parts) for k in parts[0]}
    if opp is None:
        return res

    kernels = sc.separable_filters(scielab_spd)
    spec = scipy.fft.dctn(opp, type=2, axes=(-2, -1), workers=n_threads(), overwrite_x=True)
    opp = None  # release the opponent planes
    for c, rows in enumerate(kernels):
        ev = np.stack([sc._dct_eigenvalues(np.abs(k), h) for k in rows], axis=1)  # noqa: SLF001
        eh = np.stack([sc._dct_eigenvalues(k, w) for k in rows], axis=0)  # noqa: SLF001
        transfer = ev @ eh
        spec[0, c] *= transfer
        spec[1, c] *= transfer
    filt = scipy.fft.idctn(spec, type=2, axes=(-2, -1), workers=n_threads(), overwrite_x=True)
    del spec

    def back(r0: int, r1: int) -> float:
        labs = [
            sc.xyz_to_lab_scielab(filt[i, :, r0:r1].transpose(1, 2, 0) @ sc.OPP_TO_XYZ.T, D65_WHITE_XYZ_100)
            for i in range(2)
        ]
        d = labs[0] - labs[1]
        return float(np.sqrt(np.einsum("...c,...c->...", d, d)).sum())

    res["scielab"] = math.fsum(strip_map(back, h, COLOR_ROWS))
    return res


def sq_err_sum(p: np.ndarray, t: np.ndarray) -> float:
    """Σ (p − t)² over all pixels and channels, float64, strip by strip."""

    def strip(r0: int, r1: int) -> float:
        d = p[r0:r1] - t[r0:r1]
        return float(np.einsum("ijk,ijk->", d, d))

    return math.fsum(strip_map(strip, p.shape[0], 128))


# ---------------------------------------------------------------------------------------------
# the per-pair cache


class PairWork:
    """One (pred, target) pair, validated once, with lazily computed and cached shared results.

    Parameters
    ----------
    pred, target : array_like
        H×W×3 sRGB images (numpy or torch), validated by :func:`~isp_bench.metrics._registry.as_srgb`.
    data_range : float, optional
        The range of the input values as given (scikit-image's meaning); by default the dtype's.

    Attributes
    ----------
    pred, target : numpy.ndarray
        The validated images, float64 H×W×3 in [0, 1].
    """

    def __init__(self, pred, target, data_range: float | None = None):
        self.pred, self.target = as_pair(pred, target, data_range)
        self._cache: dict = {}
        self._wanted_de76 = False
        self._wanted_spd: set[float] = set()

    def _get(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    @property
    def pixels(self) -> int:
        """Pixels per image (H·W)."""
        return self.pred.shape[0] * self.pred.shape[1]

    # planes (float32, contiguous) --------------------------------------------------------
    def grey(self) -> tuple[np.ndarray, np.ndarray]:
        """MATLAB ``rgb2gray`` of the 8-bit images (see :func:`rgb2gray_matlab_uint8`), float32."""
        return self._get("grey", lambda: tuple(
            rgb2gray_matlab_uint8(a).astype(np.float32) for a in (self.pred, self.target)))

    def channel(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        """Channel ``c`` of both images, float32."""
        return self._get(("ch", c), lambda: tuple(
            np.ascontiguousarray(a[..., c], dtype=np.float32) for a in (self.pred, self.target)))

    def planes(self, which: str) -> list[tuple[np.ndarray, np.ndarray]]:
        """``[grey]`` for ``which="grey"``, else the three RGB channels."""
        return [self.grey()] if which == "grey" else [self.channel(c) for c in range(3)]

    # shared statistics ---------------------------------------------------------------------
    def sq_err(self) -> float:
        """Σ (pred − target)² over all pixels and channels."""
        return self._get("sq_err", lambda: sq_err_sum(self.pred, self.target))

    def ssim_level1(self, which: str) -> list[tuple[float, float]]:
        """Per plane of :meth:`planes`: (mean SSIM, mean contrast-structure) at full resolution."""
        return self._get(("ssim1", which), lambda: [ssim_means(a, b) for a, b in self.planes(which)])

    def ms_ssim(self, which: str) -> float:
        """Mean over :meth:`planes` of :func:`ms_ssim_plane`, reusing :meth:`ssim_level1`."""

        def make():
            l1 = self.ssim_level1(which)
            return float(np.mean([ms_ssim_plane(a, b, lv) for (a, b), lv in zip(self.planes(which), l1)]))

        return self._get(("ms", which), make)

    def want_colour(self, *, de76: bool = False, scielab_spd: float | None = None) -> None:
        """Announce colour results a later :meth:`colour` call should compute in the same pass."""
        self._wanted_de76 |= de76
        if scielab_spd is not None:
            self._wanted_spd.add(float(scielab_spd))

    def colour(self, *, de76: bool = False, scielab_spd: float | None = None) -> dict:
        """ΔE*ab 1976 sums (key ``"de76"``: (Σ ΔE, Σ ΔE²)) and/or S-CIELAB ΔE sums (key
        ``("scielab", samp_per_deg)``), computed from one sRGB decoding together with whatever
        :meth:`want_colour` announced and is not cached yet.

        The ΔE*ab 1976 part is computed identically with or without S-CIELAB in the same pass.
        S-CIELAB here needs its kernel shorter than both image sides (see :func:`color_sums`).
        """
        have = self._cache.setdefault("colour", {})
        need_de = (de76 or self._wanted_de76) and "de76" not in have
        spds = self._wanted_spd | ({float(scielab_spd)} if scielab_spd is not None else set())
        todo = [s for s in sorted(spds) if ("scielab", s) not in have]
        for spd in todo or ([None] if need_de else []):
            res = color_sums(self.pred, self.target, de76=need_de, scielab_spd=spd)
            if need_de:
                have["de76"] = (res["de76"], res["de76_sq"])
                need_de = False
            if spd is not None:
                have[("scielab", spd)] = res["scielab"]
        return have
