"""Manifests: one Parquet file per ingested dataset, one row per (input, target) pair (DESIGN §3).

The pyarrow schema is pinned; its version, the dataset name, the isp-bench version, the content
hash of the rows and the ingest's error report live in the file's key-value metadata. Rows are
sorted by ``pair_id`` and nothing time- or machine-dependent is stored, so the same files always
give a byte-identical manifest. Every file path is relative to the dataset root, normalised and
inside it (:func:`check_manifest_path`), checked wherever a manifest is written, read or its
files are opened.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from isp_bench import __version__
from isp_bench.errors import DatasetError, ManifestError
from isp_bench.files import atomic_path, sha256_file

SCHEMA_VERSION = 1
META_PREFIX = "isp_bench."

_f64_list = pa.list_(pa.float64())
SCHEMA = pa.schema(
    [
        # identity
        pa.field("pair_id", pa.string(), nullable=False),
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("scene", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("protocol_split", pa.string()),  # split under the authors' evaluation protocol, where it differs
        pa.field("role", pa.string(), nullable=False),
        pa.field("subset", pa.string()),
        pa.field("target_device", pa.string()),
        pa.field("licence_class", pa.string(), nullable=False),
        pa.field("flags", pa.list_(pa.string()), nullable=False),
        # files (paths relative to the dataset root)
        pa.field("input_path", pa.string(), nullable=False),
        pa.field("input_bytes", pa.int64(), nullable=False),
        pa.field("input_sha256", pa.string(), nullable=False),
        pa.field("target_path", pa.string()),
        pa.field("target_bytes", pa.int64()),
        pa.field("target_sha256", pa.string()),
        pa.field("target_height", pa.int32()),
        pa.field("target_width", pa.int32()),
        pa.field("target_rot90", pa.int8()),
        pa.field("linear_target_path", pa.string()),
        pa.field("linear_target_bytes", pa.int64()),
        pa.field("linear_target_sha256", pa.string()),
        pa.field("exposure_ratio", pa.float64()),
        # RawCapture metadata of the input
        pa.field("container", pa.string()),
        pa.field("height", pa.int32()),
        pa.field("width", pa.int32()),
        pa.field("cfa", pa.string()),
        pa.field("black_level", _f64_list),
        pa.field("white_level", pa.float64()),
        pa.field("wb_as_shot", _f64_list),
        pa.field("color_matrix", _f64_list),
        pa.field("color_matrix_illuminant", pa.int32()),
        pa.field("noise_profile", _f64_list),
        pa.field("orientation", pa.int8()),
        pa.field("default_crop", pa.list_(pa.int32())),
        pa.field("make", pa.string()),
        pa.field("model", pa.string()),
        pa.field("unique_camera_model", pa.string()),
        pa.field("iso", pa.float64()),
        pa.field("exposure_s", pa.float64()),
        pa.field("fnumber", pa.float64()),
        pa.field("focal_length_mm", pa.float64()),
        pa.field("datetime", pa.string()),
        # provenance of values that did not come from the file itself
        pa.field("filled_from_dataset", pa.list_(pa.string()), nullable=False),
        pa.field("extra", pa.string()),
    ]
)
COLUMNS = SCHEMA.names
#: (path, byte size, sha256) columns of the files a row lists
FILE_COLUMNS = (("input_path", "input_bytes", "input_sha256"),
                ("target_path", "target_bytes", "target_sha256"),
                ("linear_target_path", "linear_target_bytes", "linear_target_sha256"))
PATH_COLUMNS = tuple(path_col for path_col, _, _ in FILE_COLUMNS)

#: What each value of the ``role`` column means: every role a dataset source or a capture session ingest writes.
ROLE_MEANINGS = {
    "well_lit": "a normally exposed raw and its target",
    "low_light": "an under-exposed raw (see `exposure_ratio`) and the well-exposed target",
    "mimic_isp": "a raw and the camera's own processed image (learn to mimic its ISP)",
    "demosaic": "a linear Bayer mosaic and its full-colour linear ground truth (demosaicing)",
    "patch": "a raw patch and the target device's rendition of the same patch",
    "full": "a whole raw frame and the target device's rendition of it",
    "merged": "a burst's merged raw and the burst's final rendering",
    "reference_frame": "one raw, the burst's reference frame, and the whole burst's final rendering",
    "raw_to_rgb": "a raw patch of one camera and the matching sRGB patch of another (learn to map between them)",
    "full_resolution": "a full-resolution raw without a target (for visual results)",
    **{f"expert_{x}": f"a raw and expert {x.upper()}'s retouched rendition of it" for x in "abcde"},
}

#: What each value of the ``flags`` column means: every flag an ingest, ``isp-bench qa`` or a capture
#: session ingest writes (dataset cards and ``manifest show`` explain the flags from here).
FLAG_MEANINGS = {
    # the target's geometry against the raw (every source)
    "rotated_target": "the target is stored rotated against the raw; `target_rot90` gives the `np.rot90` turns "
                      "that bring it back to sensor orientation",
    "rotation_guessed": "rotated target whose raw carries no rotating EXIF Orientation: the turn direction is a guess",
    "size_mismatch": "target and raw sizes differ by more than a rotation (crop or resize in the target's pipeline)",
    "default_crop_applied": "the target covers the raw's DefaultCrop area (`default_crop`), not the whole sensor",
    "resized_target": "the target has the raw's aspect ratio at another size (resized in the target's pipeline)",
    "cropped_target": "the target's size matches neither the raw, its DefaultCrop nor its aspect ratio (cropped in "
                      "the target's pipeline)",
    "target_half_resolution": "the target has half the raw's width and height (the packed 2×2 mosaic's size)",
    "target_exif_orientation": "the JPEG's pixels are in sensor orientation but its EXIF Orientation asks viewers to "
                               "turn it: use the pixels as stored",
    "target_alpha": "the target PNG carries an alpha channel besides RGB",
    "target_prophoto": "the target is in ProPhoto RGB (ROMM, D50, gamma 1.8), not sRGB",
    "no_target": "the raw has no target (no same-stem JPEG, or a full-resolution input without ground truth)",
    "other_raw_formats_ignored": "the capture is also kept in other raw formats (the camera's file and its DNG "
                                 "conversion, say); the camera's own file is the input, the others are ignored",
    # alignment and capture quality (the dataset's own notes, or isp-bench qa)
    "misaligned": "the target is not pixel-aligned with the raw (a misalignment the dataset's authors list, or "
                  "isp-bench qa's registration)",
    "misaligned_ambiguous": "a scene the dataset's authors list as misaligned without naming the camera; this "
                            "camera's frames may be aligned",
    "not_pixel_aligned": "input and target come from two cameras: aligned roughly, never pixel for pixel",
    "unverified": "isp-bench qa could not verify the pair's alignment (too little unambiguous structure)",
    "motion": "isp-bench qa: after global registration some textured tile still moves (subject or camera motion)",
    "clipped": "isp-bench qa: more of the raw's photosites sit at the white level than its threshold allows",
    "blurred": "isp-bench qa: markedly less sharp than the scene's other frame or the session's other captures",
    "exposure_mismatch": "isp-bench qa: the exposure ratio (EXIF, or measured from the raw data) is off the "
                         "intended one",
    # metadata the file or the dataset does not agree on
    "black_level_suspect": "the raw's values fall below the black level or above the white level the dataset's "
                           "authors use",
    "black_level_differs_from_authors_code": "the raw's black level differs from the one the dataset authors' "
                                             "code subtracts",
    "camera_model_differs_from_list": "the raw's EXIF camera model differs from the one the dataset's list names",
    "unexpected_cfa": "the raw's colour-filter phase differs from the one the dataset's camera has",
    "unexpected_white_level": "the raw's white level differs from the one the dataset's camera has",
    "exceeds_10_bit": "the raw holds values above 1023, the 10-bit white level the dataset authors' code assumes",
    "no_metadata": "the dataset's metadata files lack this capture: white balance, exposure and ISO are unknown",
    "licence_unlisted": "the image is in none of the dataset's licence lists: its licence is unknown",
    # how the row was made
    "not_hashed": "built from the dataset's split lists alone (`ingest --lists-only`): the files were not read, "
                  "their sizes and hashes are placeholders",
    "calibration_frame": "a capture session's black, white, ColorChecker or fiducial frame: not a training pair",
    "unlogged": "a raw of a capture session that no row of the session log claims",
}
_DRIVE = re.compile(r"^[A-Za-z]:")


class UnsafePathError(ManifestError):
    """A manifest path that is not relative, normalised and inside its dataset root."""


def _path_problem(rel: Any) -> str | None:
    """Why ``rel`` is not a safe manifest path (None if it is one)."""
    if not isinstance(rel, str) or not rel:
        return "is empty"
    if "\\" in rel:
        return "contains a backslash (a Windows separator; manifests use '/')"
    if "\x00" in rel:
        return "contains a NUL byte"
    if rel.startswith("/"):
        return "is absolute"
    if _DRIVE.match(rel):
        return "starts with a drive letter"
    if ".." in rel.split("/"):
        return "climbs out with '..'"
    if rel == "." or posixpath.normpath(rel) != rel:
        return f"is not normalised (write it as {posixpath.normpath(rel)!r})"
    return None


def check_manifest_path(rel: Any, *, pair_id: str, column: str, root: str | os.PathLike | None = None,
                        where: Any = None) -> Path | None:
    """Refuse (``UnsafePathError``) a manifest path that could reach outside its dataset root.

    A manifest path is relative to the dataset root, uses ``/`` separators, is normalised (no
    ``.``, ``..``, empty or trailing components), and has no drive letter. With ``root`` given,
    the path is also resolved on disk: a symlink on the way that leads outside ``root`` is
    refused, and ``root / rel`` is returned (the file to read or write). ``where`` (the manifest
    or published folder) prefixes the message. The one check used by writing, reading, validating,
    publishing, loading and ``to_root``.
    """
    problem = _path_problem(rel)
    if problem is None and root is not None:
        real_root = Path(root).resolve()
        real = (real_root / rel).resolve()
        if not real.is_relative_to(real_root):
            problem = f"resolves to {real} through a symlink, outside the dataset root {real_root}"
    if problem is not None:
        prefix = f"{where}: " if where is not None else ""
        raise UnsafePathError(
            f"{prefix}pair {pair_id!r}, column {column}: path {rel!r} {problem}. Every manifest path must be "
            "relative to the dataset root, normalised and inside it; fix the row (or the dataset layout) and re-ingest")
    return Path(root) / rel if root is not None else None


def check_manifest_paths(rows: Iterable[dict[str, Any]], root: str | os.PathLike | None = None,
                         where: Any = None) -> None:
    """:func:`check_manifest_path` on every path column of every row."""
    for row in rows:
        for column in PATH_COLUMNS:
            if row.get(column) is not None:
                check_manifest_path(row[column], pair_id=row.get("pair_id"), column=column, root=root, where=where)


def content_hash(rows: Iterable[dict[str, Any]]) -> str:
    """sha256 of the rows as canonical JSON (sorted keys, rows in the given order)."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps(row, sort_keys=True, separators=(",", ":"), default=str).encode())
        digest.update(b"\n")
    return digest.hexdigest()


@dataclass
class Manifest:
    """A manifest read back from disk: its table and its key-value metadata."""

    path: Path
    table: pa.Table
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def dataset(self) -> str:
        return self.meta["dataset"]

    @property
    def content_hash(self) -> str:
        return self.meta["content_hash"]

    @property
    def errors(self) -> list[dict[str, str]]:
        return self.meta.get("errors", [])

    def rows(self) -> list[dict[str, Any]]:
        return self.table.to_pylist()

    def to_pandas(self):
        return self.table.to_pandas()

    def __len__(self) -> int:
        return self.table.num_rows


def write_manifest(
    path: str | os.PathLike,
    rows: list[dict[str, Any]],
    *,
    dataset: str,
    errors: list[dict[str, str]] | None = None,
    source_meta: dict[str, Any] | None = None,
) -> Manifest:
    """Validate ``rows`` against the schema, sort them by pair_id and write the manifest atomically."""
    ids = [r["pair_id"] for r in rows]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        raise ManifestError(f"{path}: duplicate pair_id values {dupes[:5]}; every pair needs a unique id")
    unknown = {k for r in rows for k in r} - set(COLUMNS)
    if unknown:
        raise ManifestError(f"{path}: rows carry columns outside schema v{SCHEMA_VERSION}: {sorted(unknown)}")
    check_manifest_paths(rows, where=path)
    ordered = [{c: r.get(c) for c in COLUMNS} for r in sorted(rows, key=lambda r: r["pair_id"])]
    for row in ordered:
        row["flags"] = sorted(row["flags"] or [])
        row["filled_from_dataset"] = sorted(row["filled_from_dataset"] or [])
    try:
        table = pa.Table.from_pylist(ordered, schema=SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ManifestError(f"{path}: rows do not fit manifest schema v{SCHEMA_VERSION}: {exc}") from exc
    meta = {
        "schema_version": SCHEMA_VERSION,
        "dataset": dataset,
        "isp_bench_version": __version__,
        "content_hash": content_hash(ordered),
        "num_rows": len(ordered),
        "errors": sorted(errors or [], key=lambda e: e.get("path", "")),
        "source": source_meta or {},
    }
    table = table.replace_schema_metadata({f"{META_PREFIX}{k}": json.dumps(v, sort_keys=True) for k, v in meta.items()})
    with atomic_path(path, suffix=".parquet") as tmp:
        pq.write_table(table, tmp, compression="zstd", write_statistics=True)
    return Manifest(Path(path), table, meta)


def _schema_differences(schema: pa.Schema, shown: int = 3) -> str:
    """How ``schema`` differs from :data:`SCHEMA`: missing and extra columns, and the columns of another type (or
    nullability), grouped by the type expected and found, each group naming its first ``shown`` columns.

    >>> _schema_differences(pa.schema([pa.field("extra", pa.large_string()) if f.name == "extra" else f
    ...                               for f in SCHEMA if f.name != "iso"]))
    "missing ['iso']; 1 column of another type: extra (expected string, found large_string)"
    """
    def kind(f: pa.Field) -> str:
        return str(f.type) + ("" if f.nullable else " not null")

    found = {f.name: f for f in schema}
    missing = [name for name in COLUMNS if name not in found]
    extra = [name for name in found if name not in COLUMNS]
    changed: dict[tuple[str, str], list[str]] = {}
    for f in SCHEMA:
        if f.name in found and not found[f.name].equals(f):
            changed.setdefault((kind(f), kind(found[f.name])), []).append(f.name)
    parts = [f"missing {missing}"] * bool(missing) + [f"extra {extra}"] * bool(extra)
    if changed:
        n = sum(len(names) for names in changed.values())
        parts.append(f"{n} column{'s' * (n > 1)} of another type: " + "; ".join(
            ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")
            + f" (expected {expected}, found {got})" for (expected, got), names in changed.items()))
    return "; ".join(parts) or "the same columns in another order"


def read_manifest(path: str | os.PathLike) -> Manifest:
    """Read a manifest, checking that its schema is exactly the pinned one for its version."""
    path = Path(path)
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.parquet"))[:3]
        raise ManifestError(f"{path}: a folder, not a manifest file" + (f" (it holds {', '.join(found)})" if found
                                                                         else "") + "; give the .parquet file")
    if not path.is_file():
        raise ManifestError(f"{path}: no such manifest; create one with `isp-bench ingest SOURCE --root DIR`")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ManifestError(f"{path}: not a readable Parquet file ({exc}); re-run the ingest that wrote it") from exc
    raw_meta = table.schema.metadata or {}
    meta = {}
    for key, value in raw_meta.items():
        key = key.decode()
        if key.startswith(META_PREFIX):
            meta[key[len(META_PREFIX):]] = json.loads(value)
    version = meta.get("schema_version")
    if version is None:
        raise ManifestError(f"{path}: no isp-bench schema version in its metadata; it was not written by isp-bench")
    if version != SCHEMA_VERSION:
        raise ManifestError(f"{path}: manifest schema v{version}, this isp-bench reads v{SCHEMA_VERSION}; "
                            "re-ingest the dataset with this version")
    if not table.schema.remove_metadata().equals(SCHEMA):
        raise ManifestError(f"{path}: columns or types differ from schema v{SCHEMA_VERSION} "
                            f"({_schema_differences(table.schema)}); re-ingest the dataset")
    rows = table.to_pylist()
    if content_hash(rows) != meta.get("content_hash"):
        raise ManifestError(f"{path}: its rows do not match the content hash in its metadata (edited by hand?); "
                            "re-ingest the dataset")
    check_manifest_paths(rows, where=path)
    return Manifest(path, table, meta)



@dataclass
class ValidationReport:
    checked: int = 0
    missing: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    not_hashed: int = 0  # files listed without a hash (lists-only manifests): nothing to compare

    @property
    def ok(self) -> bool:
        return not self.missing and not self.changed

    def __str__(self) -> str:
        lines = [f"checked {self.checked} files: {len(self.missing)} missing, {len(self.changed)} changed"
                 + (f" ({self.not_hashed} listed without a hash, not checked)" if self.not_hashed else "")]
        lines += [f"  missing: {p}" for p in self.missing] + [f"  changed: {p}" for p in self.changed]
        return "\n".join(lines)


def check_dataset_root(manifest: Manifest, root: str | os.PathLike) -> Path:
    """``root`` as a Path; a :class:`DatasetError` naming the fix when it is not a folder or holds none of the
    manifest's input files (the wrong folder, not a few missing files: those are each reported where read)."""
    root = Path(root)
    fix = f"pass --root the folder {manifest.path} was ingested from"
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset root not found; {fix}")
    rows = manifest.rows()
    if rows and not any((root / row["input_path"]).is_file() for row in rows):
        raise DatasetError(f"{root}: holds none of the {len(rows)} input files the manifest lists (the first: "
                           f"{rows[0]['input_path']}); {fix}")
    return root


def validate_manifest(path: str | os.PathLike, root: str | os.PathLike, *, progress: bool = False) -> ValidationReport:
    """Re-hash every file the manifest references under ``root``; report missing or changed ones."""
    from tqdm import tqdm

    manifest = read_manifest(path)
    root = check_dataset_root(manifest, root)
    expected: dict[str, tuple[int, str]] = {}
    owners: dict[str, tuple[str, str]] = {}  # path → (pair_id, column) of a row that lists it
    for row in manifest.rows():
        for path_col, bytes_col, sha_col in FILE_COLUMNS:
            if row[path_col] is not None:
                expected[row[path_col]] = (row[bytes_col], row[sha_col])
                owners.setdefault(row[path_col], (row["pair_id"], path_col))
    report = ValidationReport(not_hashed=sum(1 for _, sha in expected.values() if not sha))
    expected = {rel: facts for rel, facts in expected.items() if facts[1]}
    for rel, (size, sha) in tqdm(sorted(expected.items()), desc="validate", unit="file", disable=not progress):
        report.checked += 1
        file = check_manifest_path(rel, pair_id=owners[rel][0], column=owners[rel][1], root=root, where=path)
        if not file.is_file():
            report.missing.append(rel)
        elif file.stat().st_size != size or sha256_file(file) != sha:
            report.changed.append(rel)
    return report


def summarize(manifest: Manifest) -> str:
    """A human summary: rows per split and role, cameras, ISO and exposure ranges, flags, errors."""
    from isp_bench.raw.capture import camera_name
    df = manifest.to_pandas()
    lines = [f"{manifest.path}: dataset {manifest.dataset!r}, {len(df)} pairs, schema v{manifest.meta['schema_version']}, "
             f"isp-bench {manifest.meta['isp_bench_version']}, content hash {manifest.content_hash[:16]}…"]
    if len(df):
        counts = df.groupby(["split", "role"]).size()
        lines.append("pairs per split/role: " + ", ".join(f"{s}/{r} {n}" for (s, r), n in counts.items()))
        cams = Counter(camera_name(r["make"], r["model"], r["unique_camera_model"])[0] or "?"
                       for r in manifest.rows())
        lines.append("cameras: " + ", ".join(f"{c} ({n})" for c, n in sorted(cams.items())))
        lines.append("CFA: " + ", ".join(f"{c} ({n})" for c, n in df.groupby(df["cfa"].fillna("?")).size().items()))
        for col, unit in (("iso", ""), ("exposure_s", " s")):
            values = df[col].dropna()
            if len(values):
                lines.append(f"{col}: {values.min():.6g}{unit} … {values.max():.6g}{unit}")
        flags = df["flags"].explode().dropna().value_counts()
        lines.append("flags: " + (", ".join(f"{f} ({n})" for f, n in flags.items()) or "none"))
    lines.append(f"ingest errors: {len(manifest.errors)}")
    lines += [f"  {e['path']}: {e['error']}" for e in manifest.errors[:20]]
    return "\n".join(lines)
