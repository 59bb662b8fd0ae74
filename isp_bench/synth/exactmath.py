"""Arithmetic whose results are the same bits on every machine, for everything the synthetic
camera computes before it quantises to 8/12/16-bit code values.

Why: numpy dispatches its transcendental ufuncs (``exp``, ``log``, ``power``, ``tanh``,
``arctan2``, …) to CPU-specific code (AVX512/SVML where present, else libm), and BLAS/LAPACK
(``@``, ``einsum``, ``linalg``) picks its kernels, and so its summation order and use of FMA, by
CPU. Their results differ in the last bits between machines, which is enough to change an
EXIF rational or, rarely, a rounded code value: the same seed then wrote other bytes elsewhere.

What is deterministic: IEEE 754 ``+ - * / sqrt`` (numpy's elementwise ufuncs, one rounding per
operation, whatever the SIMD width), ``rint``/``frexp``/``ldexp``, comparisons, and exact
rational arithmetic (:mod:`fractions`). Everything here is built from those only:

- image functions (``exp``, ``log``, ``power``, ``sin_cos``, ``apply_matrix``): range
  reduction and fixed-degree polynomials evaluated elementwise, a 3×3 colour matrix applied as
  explicit sums; accurate to a few ulp (relative ≤ 1e-15), far below any quantisation step,
  and bit-identical everywhere; ``gaussian_filter``: weights from ``exp``, sums by
  ``scipy.ndimage.correlate1d`` (C loops in a fixed order, no CPU dispatch);
- small constant matrices (``matmul``, ``inverse``, ``solve``): exact rational arithmetic on the
  float inputs, rounded once to the nearest float64 (correctly rounded results);
- ``principal_axes``: cyclic Jacobi eigen-decomposition in Python floats.

References: J.-M. Muller, *Elementary Functions: Algorithms and Implementation*, 3rd ed.,
Birkhäuser 2016 (range reduction, ch. 11); W. J. Cody, W. Waite, *Software Manual for the
Elementary Functions*, 1980 (the split ln 2 constant); G. H. Golub, C. F. Van Loan, *Matrix
Computations*, 4th ed., §8.5 (cyclic Jacobi).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from scipy import ndimage

# ln 2 split so that k · LN2_HI is exact for |k| < 2**20 (fdlibm's constants) and their sum is ln 2.
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e00
_EXP_COEFFICIENTS = tuple(1.0 / math.factorial(n) for n in range(18))  # Taylor of e^r, |r| ≤ ln2/2
_ATANH_COEFFICIENTS = tuple(1.0 / (2 * n + 1) for n in range(12))  # atanh(s)/s in s², |s| ≤ 0.172
_SIN_COEFFICIENTS = tuple((-1) ** n / math.factorial(2 * n + 1) for n in range(13))  # sin(x)/x in x²
_COS_COEFFICIENTS = tuple((-1) ** n / math.factorial(2 * n) for n in range(13))  # cos(x) in x²
_SQRT_HALF = 0.70710678118654757


def _horner(x: np.ndarray, coefficients: tuple[float, ...]) -> np.ndarray:
    result = np.full_like(x, coefficients[-1])
    for c in coefficients[-2::-1]:
        result = result * x + c
    return result


def exp(x) -> np.ndarray:
    """e**x, float64, elementwise (overflow → inf, underflow → 0)."""
    x = np.clip(np.asarray(x, dtype=np.float64), -745.2, 709.8)
    k = np.rint(x * _INV_LN2)
    r = (x - k * _LN2_HI) - k * _LN2_LO
    with np.errstate(over="ignore"):
        return np.ldexp(_horner(r, _EXP_COEFFICIENTS), k.astype(np.int32))


def log(x) -> np.ndarray:
    """Natural logarithm of x > 0, float64, elementwise (x ≤ 0 → -inf)."""
    x = np.asarray(x, dtype=np.float64)
    mantissa, exponent = np.frexp(x)  # x = mantissa · 2**exponent, mantissa in [0.5, 1)
    low = mantissa < _SQRT_HALF
    mantissa = np.where(low, mantissa * 2.0, mantissa)  # now in [√½, √2)
    exponent = (exponent - low).astype(np.float64)
    f = mantissa - 1.0  # exact (Sterbenz)
    s = f / (2.0 + f)  # log(m) = 2·atanh(s)
    log_mantissa = 2.0 * s * _horner(s * s, _ATANH_COEFFICIENTS)
    with np.errstate(divide="ignore"):
        return np.where(x > 0, exponent * _LN2_HI + (exponent * _LN2_LO + log_mantissa), -np.inf)


def power(x, p: float) -> np.ndarray:
    """sign(x)·|x|**p for a real exponent p > 0, float64, elementwise (colour-science's ``spow``)."""
    x = np.asarray(x, dtype=np.float64)
    magnitude = np.abs(x)
    positive = magnitude > 0
    result = np.where(positive, exp(p * log(np.where(positive, magnitude, 1.0))), 0.0)
    return np.copysign(result, x)


def sin_cos(x) -> tuple[np.ndarray, np.ndarray]:
    """(sin x, cos x) for |x| ≤ 1 (Taylor series to x**25 and x**24: error < 1e-25)."""
    x = np.asarray(x, dtype=np.float64)
    if np.any(np.abs(x) > 1.0):
        raise ValueError(f"sin_cos takes angles |x| ≤ 1 rad, got up to {np.abs(x).max():g}; reduce the range first")
    x2 = x * x
    return x * _horner(x2, _SIN_COEFFICIENTS), _horner(x2, _COS_COEFFICIENTS)


def apply_matrix(matrix, image) -> np.ndarray:
    """``image @ matrix.T`` for an (…, 3) image and a 3×3 matrix, as explicit elementwise sums
    ``m[i,0]·x0 + m[i,1]·x1 + m[i,2]·x2`` (no BLAS)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    image = np.asarray(image, dtype=np.float64)
    x0, x1, x2 = image[..., 0], image[..., 1], image[..., 2]
    return np.stack([x0 * m[0] + x1 * m[1] + x2 * m[2] for m in matrix], axis=-1)


def gaussian_kernel(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """scipy.ndimage's Gaussian weights (radius ``int(truncate·sigma + 0.5)``, sum 1), with
    :func:`exp` (scipy's own use numpy's dispatched ``exp``)."""
    sigma = float(sigma)
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = exp(-0.5 / (sigma * sigma) * (x * x))
    return weights / math.fsum(weights.tolist())


def gaussian_filter(image, sigma, *, mode: str = "reflect", truncate: float = 4.0) -> np.ndarray:
    """``scipy.ndimage.gaussian_filter`` (σ per axis in pixels, 0 = that axis untouched; scipy's
    edge ``mode``) with the weights of :func:`gaussian_kernel`; the sums are scipy's
    ``correlate1d``, plain C loops in a fixed order that no CPU feature changes."""
    out = np.asarray(image, dtype=np.float64)
    for axis, s in enumerate(np.broadcast_to(np.asarray(sigma, dtype=np.float64), (out.ndim,))):
        if s > 0:
            out = ndimage.correlate1d(out, gaussian_kernel(s, truncate), axis=axis, mode=mode)
    return out


# -- small constant matrices, exactly ------------------------------------------------------------

def _fractions(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return np.array([Fraction(v) for v in a.ravel().tolist()], dtype=object).reshape(a.shape)


def _floats(a) -> np.ndarray:
    return np.array([float(v) for v in np.ravel(a).tolist()], dtype=np.float64).reshape(np.shape(a))


def matmul(a, b) -> np.ndarray:
    """``a @ b`` (1-D or 2-D operands) computed exactly and rounded once to float64."""
    return _floats(np.dot(_fractions(a), _fractions(b)))


def _gauss_jordan(a, b) -> np.ndarray:
    """Exact solution X of ``a X = b`` in Fractions (a square and non-singular)."""
    n = a.shape[0]
    m = np.concatenate([a, b.reshape(n, -1)], axis=1)
    for col in range(n):
        pivot = next((r for r in range(col, n) if m[r, col] != 0), None)
        if pivot is None:
            raise np.linalg.LinAlgError("singular matrix")
        m[[col, pivot]] = m[[pivot, col]]
        m[col] = m[col] / m[col, col]
        for r in range(n):
            if r != col and m[r, col] != 0:
                m[r] = m[r] - m[r, col] * m[col]
    return m[:, n:]


def solve(a, b) -> np.ndarray:
    """Solution of ``a @ x = b`` (a: n×n; b: n or n×k), exact then rounded once to float64."""
    x = _gauss_jordan(_fractions(a), _fractions(b))
    return _floats(x.reshape(np.shape(b)))


def inverse(a) -> np.ndarray:
    """Inverse of a square matrix, exact then rounded once to float64."""
    n = np.shape(a)[0]
    return _floats(_gauss_jordan(_fractions(a), _fractions(np.eye(n))))


def principal_axes(a, k: int, *, sweeps: int = 50) -> np.ndarray:
    """The k leading right singular vectors of ``a`` (columns of an n×k array; each sign
    unspecified), from the eigenvectors of the exact Gram matrix ``aᵀa`` by cyclic Jacobi
    rotations in Python floats."""
    g = matmul(np.asarray(a, dtype=np.float64).T, a).tolist()
    n = len(g)
    v = [[1.0 if i == j else 0.0 for j in range(n)] for i in range(n)]
    for _ in range(sweeps):
        off = math.fsum(g[i][j] * g[i][j] for i in range(n) for j in range(n) if i != j)
        if off <= 1e-30 * math.fsum(g[i][i] * g[i][i] for i in range(n)):
            break
        for p in range(n - 1):
            for q in range(p + 1, n):
                if g[p][q] == 0.0:
                    continue
                theta = (g[q][q] - g[p][p]) / (2.0 * g[p][q])
                t = math.copysign(1.0, theta) / (abs(theta) + math.sqrt(theta * theta + 1.0))
                c = 1.0 / math.sqrt(t * t + 1.0)
                s = t * c
                for r in range(n):  # columns p, q of g and v
                    grp, grq = g[r][p], g[r][q]
                    g[r][p], g[r][q] = c * grp - s * grq, s * grp + c * grq
                    vrp, vrq = v[r][p], v[r][q]
                    v[r][p], v[r][q] = c * vrp - s * vrq, s * vrp + c * vrq
                for r in range(n):  # rows p, q of g
                    gpr, gqr = g[p][r], g[q][r]
                    g[p][r], g[q][r] = c * gpr - s * gqr, s * gpr + c * gqr
    order = sorted(range(n), key=lambda i: -g[i][i])[:k]
    return np.array([[v[r][i] for i in order] for r in range(n)], dtype=np.float64)
