"""Random seeds: the one range every seeded step of the suite accepts.

A seed reaches :func:`numpy.random.default_rng` (non-negative integers only) and
:func:`torch.manual_seed`; [0, 2**32) is the range both take and the one users expect from
``np.random.seed``.
"""

from __future__ import annotations

from typing import Any

from isp_bench.errors import IspBenchError

SEED_LIMIT = 2**32  # seeds are integers in [0, SEED_LIMIT)


class SeedError(IspBenchError, ValueError):
    """A seed outside [0, 2**32) or not an integer."""


def check_seed(seed: Any) -> int:
    """``seed`` as an int when it is an integer in [0, 2**32), else a :class:`SeedError` naming it."""
    if isinstance(seed, bool) or not hasattr(seed, "__index__") or not 0 <= seed.__index__() < SEED_LIMIT:
        raise SeedError(f"seed {seed!r} is not an integer from 0 to {SEED_LIMIT - 1}; pass e.g. --seed 0")
    return seed.__index__()
