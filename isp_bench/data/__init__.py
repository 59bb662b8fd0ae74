"""Training data: the memory-mapped preprocessing cache and a torch Dataset over manifests.

Not to be confused with :mod:`isp_bench.datasets`, the adapters that read each published dataset
layout and write the manifests this package reads."""

from isp_bench.data.augment import DIHEDRAL, patch_views
from isp_bench.data.cache import PREPROCESS_VERSION, CacheError, PreprocessCache, load_mosaic, preprocess_row
from isp_bench.data.dataset import BatchLoader, PairDataset

__all__ = ["DIHEDRAL", "PREPROCESS_VERSION", "CacheError", "PairDataset", "PreprocessCache", "BatchLoader",
           "load_mosaic", "patch_views", "preprocess_row"]
