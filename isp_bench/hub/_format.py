"""The layout of a published isp-bench dataset (shared by publish, card and load).

A published dataset is a Hugging Face dataset repository folder::

    README.md                                  dataset card (YAML header + prose)
    LICENSE.md                                 the source's licence statement
    data/<split>-NNNNN-of-MMMMM.parquet        one row per manifest pair, shards per split
    .isp-bench-publish.json                    resume state (hidden; never uploaded)

Each row holds every manifest column (schema v1, same names and types) plus the files' bytes:

- ``raw``: the input raw file's original bytes (``binary``), untouched: the container with all
  of its metadata (DNG tags, maker notes), so the sha256 in ``input_sha256`` verifies it and any
  raw reader (rawpy/LibRaw, exiftool, dcraw) sees exactly what the dataset's authors published.
- ``target``: the target's original bytes: a ``datasets.Image`` (``{"bytes", "path"}``) when every
  target is a JPEG or PNG, which the Hub viewer shows and ``load_dataset`` decodes to a PIL image;
  otherwise (16-bit TIFF, a raw long exposure as in SID, which PIL cannot decode) ``binary``.
- ``linear_target``: the linear target's original bytes (``binary``; usually a 16-bit PNG, which
  PIL would truncate to 8 bits, so it is not an ``Image`` feature).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the layout constants are read by `isp-bench --help`; pyarrow loads when a schema is built
    import pyarrow as pa

FORMAT_VERSION = 1
DATA_DIR = "data"
STATE_FILE = ".isp-bench-publish.json"
CARD_FILE = "README.md"
LICENSE_FILE = "LICENSE.md"
META_KEY = b"isp_bench.publish"  # shard key-value metadata: manifest meta + shard facts (JSON)

RAW_COLUMN, TARGET_COLUMN, LINEAR_TARGET_COLUMN = "raw", "target", "linear_target"
#: (bytes column, manifest path column, manifest sha256 column)
FILE_SOURCES = ((RAW_COLUMN, "input_path", "input_sha256"),
                (TARGET_COLUMN, "target_path", "target_sha256"),
                (LINEAR_TARGET_COLUMN, "linear_target_path", "linear_target_sha256"))

# The defaults of `datasets.Dataset.push_to_hub` (datasets.config.MAX_SHARD_SIZE / MAX_ROW_GROUP_SIZE):
# shards of at most ~500 MB upload and stream well, and row groups of at most ~100 MB keep the Hub's
# dataset viewer (which reads one row group at a time) and every reader's memory bounded.
DEFAULT_SHARD_MB = 500
DEFAULT_ROW_GROUP_MB = 100
MAX_ROWS_PER_GROUP = 100  # datasets' batch size for binary/image datasets

_SPLIT_RE = re.compile(r"^\w+(\.\w+)*$")  # what `datasets` accepts as a split name
_SHARD_RE = re.compile(r"^(?P<split>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.parquet$")


def shard_name(split: str, index: int, count: int) -> str:
    """``data/<split>-NNNNN-of-MMMMM.parquet`` (the naming `push_to_hub` uses)."""
    return f"{DATA_DIR}/{split}-{index:05d}-of-{count:05d}.parquet"


def is_shard_name(name: str) -> bool:
    return _SHARD_RE.match(name) is not None


def split_pattern(split: str) -> str:
    """The ``data_files`` glob of one split in the card's ``configs``."""
    return f"{DATA_DIR}/{split}-*"


def valid_split_name(split: str) -> bool:
    return _SPLIT_RE.match(split) is not None


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")  # what PIL (and so the Hub viewer) decodes faithfully enough


def target_is_image(target_paths) -> bool:
    """Whether the ``target`` column can be a ``datasets.Image``: every target a JPEG or PNG."""
    return all(p is None or p.lower().endswith(IMAGE_SUFFIXES) for p in target_paths)


def hub_features(target_image: bool = True):
    """The ``datasets.Features`` of a published row: manifest columns + raw/target/linear_target."""
    import datasets

    from isp_bench.manifest import SCHEMA

    features = datasets.Features.from_arrow_schema(SCHEMA)
    features[RAW_COLUMN] = datasets.Value("binary")
    features[TARGET_COLUMN] = datasets.Image() if target_image else datasets.Value("binary")
    features[LINEAR_TARGET_COLUMN] = datasets.Value("binary")
    return features


def hub_schema(target_image: bool = True) -> pa.Schema:
    """The Arrow schema of a shard, with the ``huggingface`` features metadata `datasets` reads."""
    return hub_features(target_image).arrow_schema

