"""The dataset card (``README.md``) of a published dataset: a YAML header the Hub and ``datasets``
read (licence, task categories, size category, configs with each split's data files) and prose a
researcher reads (source, capture conditions, cameras, splits and how they were made, flags and
known issues, licence, citation, and the isp-bench version and manifest hash it came from).

Everything in the card is derived from the manifest and the source class, never typed by hand,
so republishing the same manifest writes the same card.
"""

from __future__ import annotations

import glob
import re
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from isp_bench import __version__
from isp_bench.errors import IspBenchError
from isp_bench.hub._format import (
    CARD_FILE,
    FORMAT_VERSION,
    LICENSE_FILE,
    LINEAR_TARGET_COLUMN,
    RAW_COLUMN,
    TARGET_COLUMN,
    split_pattern,
    target_is_image,
)
from isp_bench.manifest import FLAG_MEANINGS, ROLE_MEANINGS, Manifest

TASK_CATEGORIES = ["image-to-image"]
TAGS = ["raw-images", "camera-isp", "computational-photography", "isp-bench"]
LEARNING_SPLITS = ("train", "val", "test")  # the splits a scene must not cross

class CardError(IspBenchError):
    """A dataset card is missing or its YAML header cannot be read."""


def size_category(n: int) -> str:
    """The Hub's ``size_categories`` label for ``n`` rows."""
    if n < 1000:
        return "n<1K"
    bounds = [(10**4, "1K<n<10K"), (10**5, "10K<n<100K"), (10**6, "100K<n<1M"), (10**7, "1M<n<10M"),
              (10**8, "10M<n<100M"), (10**9, "100M<n<1B")]
    for bound, label in bounds:
        if n < bound:
            return label
    return "n>1T" if n >= 10**12 else "1B<n<10B"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def license_text(source) -> str:
    """``LICENSE.md``: the source's licence statement, its class, and where the original lives."""
    return (f"# Licence of {source.title}\n\n{source.licence}\n\n"
            f"- Licence class (per-row `licence_class`): `{source.licence_class}`\n"
            f"- Redistribution allowed: {'yes' if source.redistributable else 'no'}\n"
            f"- Original dataset: {source.url}\n\n"
            "This repository redistributes the dataset's files unchanged under the terms above; the isp-bench "
            "metadata columns are BSD-3-Clause.\n")


def _gated(source) -> bool:
    """Whether the Hub asks users to agree to the licence first: a restricted one (research-only, ...), not an
    open one nor the licence a publisher declared for their own captures (class ``user``)."""
    return source.licence_class not in ("open", "user")


def card_yaml(manifest: Manifest, source, splits: list[str]) -> dict[str, Any]:
    """The card's YAML header as a dict."""
    header: dict[str, Any] = {}
    hub_license = getattr(source, "hub_license", None)  # a Hub licence identifier, when the source names one
    if hub_license:
        header["license"] = hub_license
    else:
        header.update({"license": "other", "license_name": _slug(f"{source.name}-licence"),
                       "license_link": LICENSE_FILE})
    header.update({
        "pretty_name": source.title,
        "task_categories": list(TASK_CATEGORIES),
        "tags": [*TAGS, source.name],
        "size_categories": [size_category(len(manifest))],
    })
    if _gated(source):
        header["extra_gated_prompt"] = (f"{source.title} is distributed under a {source.licence_class} licence: "
                                        f"{source.licence}")
        header["extra_gated_fields"] = {f"I will use this dataset under its licence ({source.licence_class})": "checkbox"}
    header["configs"] = [{"config_name": "default",
                          "data_files": [{"split": s, "path": split_pattern(s)} for s in splits]}]
    return header


def _range(values, unit: str = "", fmt: str = ".4g") -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "not recorded"
    lo, hi = min(values), max(values)
    return f"{lo:{fmt}}{unit}" if lo == hi else f"{lo:{fmt}}{unit} – {hi:{fmt}}{unit}"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def card_body(manifest: Manifest, source, shards: list[dict[str, Any]], repo_id: str | None = None) -> str:
    """The card's prose (markdown): the sections below, in reading order."""
    rows = manifest.rows()
    splits = sorted({r["split"] for r in rows})
    image_target = target_is_image(r["target_path"] for r in rows)
    sections = [
        intro_section(manifest, source, rows, splits),
        source_section(source),
        capture_section(rows),
        cameras_section(rows),
        splits_section(rows, splits, shards, source),
        flags_section(rows, manifest.meta, source),
        fields_section(manifest.meta, image_target),
        usage_section(source.name, splits, repo_id or "path/to/this/folder", image_target),
        licence_section(source, rows),
        citation_section(source),
        provenance_section(manifest, source.name, len(rows)),
    ]
    return "\n".join(line for section in sections for line in section)


def intro_section(manifest: Manifest, source, rows: list[dict[str, Any]], splits: list[str]) -> list[str]:
    """Title and one paragraph: what the pairs are, how many, from which manifest."""
    return [f"# {source.title}", "",
            f"Raw sensor captures paired with rendered targets, for training and evaluating learned camera ISPs "
            f"(raw → display sRGB). {len(rows)} pairs in {len(splits)} split(s), published with "
            f"isp-bench {__version__} from the `{source.name}` manifest "
            f"(content hash `{manifest.content_hash}`)."]


def source_section(source) -> list[str]:
    """The original dataset, the adapter's layout and the licence."""
    return ["", "## Source", "",
            f"- Dataset: {source.title}",
            f"- Original: {source.url}",
            f"- Layout read by isp-bench's `{source.name}` adapter: {source.layout}",
            f"- Licence: {source.licence} (class `{source.licence_class}`; see [{LICENSE_FILE}]({LICENSE_FILE}))"]


def capture_section(rows: list[dict[str, Any]]) -> list[str]:
    """Pairs per role with their exposure ratios, ranges of the exposure facts, subsets, target devices."""
    roles = Counter(r["role"] for r in rows)
    out = ["", "## Capture conditions", "",
           _table(["role", "pairs", "meaning", "exposure ratio"],
                  [[f"`{role}`", n, ROLE_MEANINGS.get(role, ""),
                    _range([r["exposure_ratio"] for r in rows if r["role"] == role], "×")]
                   for role, n in sorted(roles.items())]),
           "",
           f"- ISO: {_range([r['iso'] for r in rows])}",
           f"- Exposure time: {_range([r['exposure_s'] for r in rows], ' s')}",
           f"- f-number: {_range([r['fnumber'] for r in rows])}",
           f"- Focal length: {_range([r['focal_length_mm'] for r in rows], ' mm')}",
           f"- Capture dates: {_range([r['datetime'] for r in rows], fmt='')}"]
    subsets = Counter(r["subset"] for r in rows if r["subset"])
    if subsets:
        out.append("- Subsets: " + ", ".join(f"`{s}` ({n})" for s, n in sorted(subsets.items())))
    devices = Counter(r["target_device"] for r in rows if r["target_device"])
    if devices:
        out.append("- Targets rendered by: " + ", ".join(f"{d} ({n})" for d, n in sorted(devices.items())))
    return out


def cameras_section(rows: list[dict[str, Any]]) -> list[str]:
    """One table row per (camera, the tag that named it, CFA, container), and the dataset-level
    constants that filled values the raw files do not carry."""
    from isp_bench.raw.capture import camera_name

    cameras: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        camera, named_by = camera_name(r["make"], r["model"], r["unique_camera_model"])
        key = (camera or "?", named_by or "?", r["cfa"] or "?", r["container"] or "?")
        entry = cameras.setdefault(key, {"pairs": 0, "sizes": set(), "white_levels": set()})
        entry["pairs"] += 1
        entry["sizes"].add(f"{r['width']}×{r['height']}")
        entry["white_levels"].add(r["white_level"])
    out = ["", "## Cameras", "",
           _table(["camera", "named by (tags)", "CFA", "container", "raw size (w×h)", "white level", "pairs"],
                  [[*key, ", ".join(sorted(e["sizes"])),
                    ", ".join(f"{w:g}" for w in sorted(w for w in e["white_levels"] if w is not None)), e["pairs"]]
                   for key, e in sorted(cameras.items())])]
    filled = Counter(f for r in rows for f in r["filled_from_dataset"])
    if filled:
        out += ["", "Values the raw files do not carry, filled from documented dataset-level constants "
                "(column `filled_from_dataset`): " + ", ".join(f"`{f}` ({n} rows)" for f, n in sorted(filled.items()))]
    return out


def splits_section(rows: list[dict[str, Any]], splits: list[str], shards: list[dict[str, Any]], source) -> list[str]:
    """Pairs, scenes, shards and megabytes per split; how the splits were made and whether a scene
    crosses them."""
    shard_split = {s["name"]: s["name"].split("/", 1)[1].rsplit("-", 3)[0] for s in shards}
    shard_count = Counter(shard_split.values())
    shard_mb = Counter()
    for s in shards:
        shard_mb[shard_split[s["name"]]] += s["bytes"] / 1e6
    scene_splits: dict[str, set[str]] = {}
    for r in rows:
        if r["split"] in LEARNING_SPLITS:  # a capture session's calibration frames share their image's scene
            scene_splits.setdefault(r["scene"], set()).add(r["split"])
    table = _table(["split", "pairs", "scenes", "shards", "size (MB)"],
                   [[f"`{s}`", sum(r["split"] == s for r in rows),
                     len({r["scene"] for r in rows if r["split"] == s}), shard_count[s], f"{shard_mb[s]:.1f}"]
                    for s in splits])
    crossing = sorted(s for s, v in scene_splits.items() if len(v) > 1)
    how = getattr(source, "split_note", None) or (
        f"The `split` column is the split isp-bench's `{source.name}` adapter assigns from the dataset's official "
        "split lists (or, where the dataset defines none, the rule the adapter documents); splits never depend on "
        "directory listing order.")
    leaks = ("No scene lies in more than one of train, val and test, so no scene content leaks between them."
             if not crossing else
             f"{len(crossing)} scene(s) appear in more than one of train, val and test: {', '.join(crossing[:10])}.")
    return ["", "## Splits", "", table, "", how + " " + leaks]


def flags_section(rows: list[dict[str, Any]], meta: dict[str, Any], source) -> list[str]:
    """Pairs per flag with its meaning, the adapter's notes, and the files left out at ingest."""
    out = ["", "## Flags and known issues", ""]
    flags = Counter(f for r in rows for f in r["flags"])
    if flags:
        out.append(_table(["flag", "pairs", "meaning"],
                          [[f"`{f}`", n, FLAG_MEANINGS.get(f, "")] for f, n in sorted(flags.items())]))
    else:
        out.append("No pair carries a flag (column `flags`).")
    if getattr(source, "notes", ""):
        out += ["", f"Adapter notes: {source.notes}"]
    errors = meta.get("errors", [])
    if errors:
        out += ["", f"{len(errors)} file(s) of the original could not be read at ingest and their "
                f"{meta.get('source', {}).get('pairs_skipped', '?')} pair(s) are left out:"]
        out += [f"- `{e.get('path')}`: {e.get('error')}" for e in errors[:20]]
        if len(errors) > 20:
            out.append(f"- … and {len(errors) - 20} more (see the manifest's metadata)")
    else:
        out += ["", "Every file the source layout lists was read at ingest; no pair is left out."]
    return out


def fields_section(meta: dict[str, Any], image_target: bool) -> list[str]:
    """The columns: the manifest's, plus the raw, target and linear-target bytes."""
    return ["", "## Data fields", "",
            "One row per (input raw, target) pair. Every column of the isp-bench manifest (schema "
            f"v{meta.get('schema_version')}) is kept with its name and type, plus the files themselves:", "",
            f"- `{RAW_COLUMN}` (binary): the input raw file's **original bytes**, untouched (container, maker notes, "
            "DNG tags and all); `sha256(raw) == input_sha256`, and `input_path` gives its name and extension. "
            "Decode with rawpy/LibRaw, or with `isp_bench.hub.load(...).raw(pair_id)` into a RawCapture.",
            f"- `{TARGET_COLUMN}` ({'Image' if image_target else 'binary'}): the target's original bytes "
            f"(`target_path`, `target_sha256`)"
            + ("." if image_target else "; not an Image feature because some targets are files PIL cannot "
               "decode faithfully (16-bit TIFF, raw)."),
            f"- `{LINEAR_TARGET_COLUMN}` (binary): the linear target's original bytes when the dataset has one "
            "(often 16-bit PNG, which PIL would truncate, hence not an Image feature).",
            "- RawCapture metadata of the input: `cfa`, `black_level` (per 2×2 CFA position), `white_level`, "
            "`wb_as_shot` (R, G, B; G = 1), `color_matrix` (camera → XYZ, row-major 3×3) and its "
            "`color_matrix_illuminant`, `noise_profile`, `orientation`, `default_crop`, exposure facts. "
            "A value the file does not carry is null, never a default.",
            "- Identity: `pair_id`, `scene`, `split`, `role`, `subset`, `flags`, `licence_class`, `extra` (JSON)."]


def usage_section(dataset: str, splits: list[str], target_ref: str, image_target: bool) -> list[str]:
    """Loading with ``datasets`` and with ``isp_bench.hub`` (``target_ref``: the repo id or a folder)."""
    return ["", "## Usage", "", "```python", "from datasets import load_dataset", "",
            f'ds = load_dataset("{target_ref}")', f'row = ds["{splits[0] if splits else "train"}"][0]',
            'raw_bytes, target = row["raw"], row["target"]  # bytes of the raw file, '
            + ("PIL image" if image_target else "bytes of the target file"), "",
            "import isp_bench.hub", "", f'pub = isp_bench.hub.load("{target_ref}")',
            "pub.table                      # manifest-equivalent table (pyarrow)",
            "capture = pub.raw(pub.pair_ids()[0])   # RawCapture: mosaic + metadata",
            f'pub.to_root("{dataset}-root")    # files under their original paths + {dataset}.parquet manifest', "```"]


def licence_section(source, rows: list[dict[str, Any]]) -> list[str]:
    classes = Counter(r["licence_class"] for r in rows if r["licence_class"])
    said = f"Licence class `{source.licence_class}`"
    if set(classes) == {source.licence_class}:
        said += ", carried in every row's `licence_class`."
    else:  # per-image licences (FiveK: Adobe, or Adobe and MIT)
        said += ("; each row's `licence_class` names the licence of its files: "
                 + ", ".join(f"`{c}` ({n} pair{'s' * (n != 1)})" for c, n in sorted(classes.items())) + ".")
    out = ["", "## Licence", "", f"{source.licence}", "", said]
    if _gated(source):
        out.append("Access is gated: users agree to these terms before downloading.")
    return out


def citation_section(source) -> list[str]:
    out = ["", "## Citation", ""]
    if getattr(source, "citation", ""):
        out += ["```bibtex", source.citation.strip(), "```"]
    elif source.licence_class == "user":
        out.append("The publisher names no citation; cite this dataset's repository.")
    else:
        where = f" at {source.url}" if str(source.url).startswith("http") else ""
        out.append(f"The source names no citation; cite the original dataset{where}.")
    return out


def provenance_section(manifest: Manifest, dataset: str, n_rows: int) -> list[str]:
    """The isp-bench and format versions and the manifest content hash the shards carry."""
    meta = manifest.meta
    return ["", "## Provenance", "",
            f"- Published by isp-bench {__version__} (publish format v{FORMAT_VERSION})",
            f"- Manifest: dataset `{dataset}`, schema v{meta.get('schema_version')}, written by isp-bench "
            f"{meta.get('isp_bench_version')}, {n_rows} rows",
            f"- Manifest content hash: `{manifest.content_hash}`",
            "- The same hash is stored in every shard's Parquet metadata (`isp_bench.publish`); "
            "`isp_bench.hub.load` recomputes it from the rows it reads.", ""]


def build_card(manifest: Manifest, source, shards: list[dict[str, Any]], *, repo_id: str | None = None) -> str:
    """The full ``README.md``: YAML header between ``---`` lines, then the prose."""
    splits = sorted({r["split"] for r in manifest.rows()})
    header = yaml.safe_dump(card_yaml(manifest, source, splits), sort_keys=False, allow_unicode=True, width=120)
    return f"---\n{header}---\n\n{card_body(manifest, source, shards, repo_id)}"


def read_card(folder: str | Path) -> tuple[dict[str, Any], str]:
    """The card's YAML header (parsed) and its prose."""
    path = Path(folder) / CARD_FILE
    if not path.is_file():
        raise CardError(f"{path}: no dataset card; {folder} is not a published dataset (run `isp-bench publish`)")
    text = path.read_text(encoding="utf-8")
    match = re.match(r"^---\n(.*?)\n---\n(.*)$", text, re.S)
    if not match:
        raise CardError(f"{path}: no YAML header between '---' lines; republish the dataset")
    try:
        header = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        raise CardError(f"{path}: its YAML header does not parse ({exc}); republish the dataset") from exc
    return header, match.group(2)


def data_files(folder: str | Path, config: str = "default") -> dict[str, list[Path]]:
    """Each split of ``config`` with the files its ``data_files`` patterns match in ``folder``."""
    folder = Path(folder)
    header, _ = read_card(folder)
    configs = {c.get("config_name", "default"): c for c in header.get("configs", [])}
    if config not in configs:
        raise CardError(f"{folder / CARD_FILE}: no config {config!r} (has {sorted(configs)})")
    files = configs[config]["data_files"]
    if isinstance(files, (str, list)) and not (isinstance(files, list) and files and isinstance(files[0], dict)):
        files = [{"split": "train", "path": files}]
    out: dict[str, list[Path]] = {}
    for entry in files:
        patterns = entry["path"] if isinstance(entry["path"], list) else [entry["path"]]
        matched = sorted({Path(p) for pat in patterns for p in glob.glob(str(folder / pat))})
        out[entry["split"]] = [p for p in matched if not p.name.startswith(".")]
    return out
