"""Dataset sources: one registered class per public dataset (DESIGN §3).

A source knows its published layout and yields :class:`PairRecord` objects (paths relative to
the dataset root, official split, role, flags); the ingest engine reads the files, and the source
gets a last word on each row through :meth:`DatasetSource.finish_row` (orientation checks,
dataset-level constants) once the files' facts are known.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterator

from isp_bench.datasets._common import ROT90
from isp_bench.errors import DatasetError, unknown_name_error


@dataclass
class PairRecord:
    """One (input, target) pair as a source finds it on disk, before any file is read."""

    pair_id: str
    scene: str
    split: str
    role: str
    input_path: str
    target_path: str | None = None
    linear_target_path: str | None = None
    subset: str | None = None
    target_device: str | None = None
    exposure_ratio: float | None = None
    flags: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    # Manifest column values the dataset's own lists/constants provide (e.g. ISO from the SID lists):
    # used only where the input file carries no value; the column is then named in filled_from_dataset.
    fill: dict[str, Any] = field(default_factory=dict)
    licence_class: str | None = None  # per-pair licence class where it varies (FiveK); else the source's
    protocol_split: str | None = None  # split under the authors' evaluation protocol (SID: burst 00 of test)


@dataclass
class LayoutReport:
    """What a root folder holds against what the source expects."""

    source: str
    root: str
    found: dict[str, int]
    expected: dict[str, int]
    missing: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.missing and all(self.found.get(k, 0) >= v for k, v in self.expected.items())


class DatasetSource:
    """Base class of a dataset source. Subclasses set the class attributes and implement pairs()."""

    name: ClassVar[str]
    title: ClassVar[str]
    layout: ClassVar[str]
    licence: ClassVar[str]
    licence_class: ClassVar[str]  # e.g. "open", "research-only", "non-commercial-no-redistribution"
    redistributable: ClassVar[bool]
    url: ClassVar[str]
    citation: ClassVar[str] = ""
    # "raw": inputs are camera raw containers read by read_raw; "mosaic_image": inputs are images
    # (e.g. 16-bit PNG mosaics) that the source reads itself in read_input().
    input_kind: ClassVar[str] = "raw"
    target_kind: ClassVar[str] = "image"  # "raw" where the target is itself a raw file (SID's long exposure)
    supports_lists_only: ClassVar[bool] = False  # pairs() can run from shipped lists alone
    options_help: ClassVar[dict[str, str]] = {}  # source options (e.g. {"model": "..."}), see __init__
    notes: ClassVar[str] = ""

    def __init__(self, **options: Any) -> None:
        unknown = set(options) - set(self.options_help) - {"lists_only"}
        if unknown:
            raise DatasetError(f"dataset source {self.name!r} has no option(s) {sorted(unknown)}; "
                               f"it accepts {sorted(self.options_help) or 'none'}")
        self.options: dict[str, Any] = {k: v for k, v in options.items() if v is not None}

    def read_input(self, path: Path):
        """Read one input file as a RawCapture (``input_kind == "mosaic_image"`` sources override this).
        ``capture.extra`` may carry ``flags`` (added to the row's flags) and facts for the row's extra."""
        from isp_bench.raw import read_raw
        return read_raw(path)

    def read_target(self, path: Path):
        """The display target of a pair as its file holds it (H×W×C uint8 or uint16): the image file, or for
        sources whose targets are raw files (``target_kind == "raw"``) their rendering by the authors' recipe."""
        from isp_bench.images import read_image
        return read_image(path)

    def pairs(self, root: Path) -> Iterator[PairRecord]:
        raise NotImplementedError

    def check_layout(self, root: Path) -> LayoutReport:
        raise NotImplementedError

    def finish_row(self, row: dict[str, Any], target_info: dict[str, Any] | None) -> dict[str, Any]:
        """Apply the checks every raw→rendered-image pair needs: a target stored rotated against the
        raw (compared through the raw's Orientation) is flagged and ``target_rot90`` records the
        ``np.rot90`` turns that bring it back to sensor orientation; other size mismatches are flagged."""
        if target_info is None:
            return row
        th, tw = target_info["height"], target_info["width"]
        row["target_height"], row["target_width"] = th, tw
        rh, rw = row["height"], row["width"]
        row["target_rot90"] = 0
        if (th, tw) != (rh, rw) and (th, tw) == (rw, rh):
            row["target_rot90"] = ROT90.get(row["orientation"], 1)
            row["flags"].append("rotated_target")
            if row["orientation"] not in (5, 6, 7, 8):
                row["flags"].append("rotation_guessed")
        elif (th, tw) != (rh, rw):
            row["flags"].append("size_mismatch")
        return row

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "layout": self.layout, "licence": self.licence,
                "licence_class": self.licence_class, "redistributable": self.redistributable, "url": self.url,
                "notes": self.notes, "options": dict(self.options_help)}


_SOURCES: dict[str, type[DatasetSource]] = {}


def register_source(cls: type[DatasetSource]) -> type[DatasetSource]:
    """Class decorator adding a source to the registry under ``cls.name``."""
    if cls.name in _SOURCES:
        raise ValueError(f"dataset source {cls.name!r} is registered twice")
    _SOURCES[cls.name] = cls
    return cls


def get_source(name: str, **options: Any) -> DatasetSource:
    """An instance of the registered source ``name`` (near misses are listed on a miss), configured
    with the source's ``options`` (e.g. ``model="Nexus 6P"`` for hdrplus)."""
    try:
        cls = _SOURCES[name]
    except KeyError:
        raise unknown_name_error("dataset source", name, list(_SOURCES)) from None
    return cls(**options)


def list_sources(pattern: str = "*") -> list[str]:
    return sorted(n for n in _SOURCES if fnmatch.fnmatch(n, pattern))
