"""Dataset sources: one adapter per published dataset layout (files on disk → manifest rows) and their
registry, ``get_source(name)``, ``list_sources()``. The official split lists and per-image metadata
the adapters read ship beside them in ``isp_bench/datasets/lists/<source>/``.

Not to be confused with :mod:`isp_bench.data`, which feeds training: it reads manifests (whatever
source wrote them) into the preprocessing cache and a torch Dataset."""

from isp_bench.datasets import synth  # noqa: F401  (registers the source)
from isp_bench.datasets import (  # noqa: F401  (each module registers its source)
    crispnet,
    fivek,
    hdrplus,
    msr,
    pairs,
    s7isp,
    sid,
    zurich,
)
from isp_bench.datasets.base import (
    DatasetSource,
    LayoutReport,
    PairRecord,
    get_source,
    list_sources,
    register_source,
)

__all__ = ["DatasetSource", "LayoutReport", "PairRecord", "get_source", "list_sources", "register_source"]
