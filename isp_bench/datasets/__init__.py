"""Dataset sources (adapters) and their registry: ``get_source(name)``, ``list_sources()``."""

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
