"""``isp-bench publish MANIFEST --root DIR --out FOLDER [--repo-id ORG/NAME]``.

``isp_bench.cli`` (COMMAND_MODULES) calls :func:`add_commands` with its subparsers object.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from isp_bench.hub._format import DEFAULT_ROW_GROUP_MB, DEFAULT_SHARD_MB
from isp_bench.parallel import add_scheduler_option, process_count


def add_commands(subparsers) -> None:
    """Add the ``publish`` subcommand to an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "publish",
        help="write a manifest and its files as a Hugging Face dataset folder (Parquet shards + card); "
             "optionally upload it",
        description="Write MANIFEST and the files under --root as a Hub-ready dataset folder: "
                    "data/<split>-NNNNN-of-MMMMM.parquet shards (every manifest column, the raw file's original "
                    "bytes, the target image) and a README.md dataset card. Loads with "
                    "datasets.load_dataset(FOLDER). An interrupted export resumes when re-run. Sources whose "
                    "licence forbids redistribution are refused; your own captures need --licence.",
    )
    p.add_argument("manifest", type=Path, help="manifest written by `isp-bench ingest`")
    p.add_argument("--root", type=Path, required=True, help="dataset root the manifest's paths are relative to")
    p.add_argument("--out", type=Path, required=True, help="dataset repository folder to write (resumes if present)")
    p.add_argument("--repo-id", default=None, metavar="ORG/NAME",
                   help="also upload the folder to this Hugging Face dataset repository (token: HF_TOKEN or "
                        "`hf auth login`); the only network use (default: none, nothing is uploaded)")
    p.add_argument("--licence", default=None, metavar="ID",
                   help="the licence you publish your own captures (`pairs`, `capture session-ingest`) under, a "
                        "Hugging Face licence identifier such as cc-by-4.0; required for them, refused for public "
                        "datasets, which keep their own (default: none)")
    p.add_argument("--private", action="store_true",
                   help="create the Hub repository as private (default: the Hub account's default visibility)")
    p.add_argument("--shard-mb", type=float, default=DEFAULT_SHARD_MB,
                   help="target Parquet shard size in MB (default: %(default)s, as push_to_hub)")
    p.add_argument("--row-group-mb", type=float, default=DEFAULT_ROW_GROUP_MB,
                   help="Parquet row-group size in MB; bounds each worker's memory (default: %(default)s)")
    p.add_argument("--workers", type=process_count, default=None,
                   help="processes writing shards (default: all CPUs; local: 1 = in-process, and in-process "
                        "under 256 MB)")
    add_scheduler_option(p, "the writing and hashing of the shards")
    p.add_argument("--quiet", action="store_true", help="no progress bar (default: show it)")
    p.set_defaults(func=run_publish)


def run_publish(args: argparse.Namespace) -> int:
    from isp_bench.hub.publish import publish

    result = publish(args.manifest, args.root, args.out, repo_id=args.repo_id, shard_mb=args.shard_mb,
                     row_group_mb=args.row_group_mb, workers=args.workers, scheduler=args.scheduler,
                     progress=not args.quiet, private=True if args.private else None, licence=args.licence)
    splits = ", ".join(f"{s} {n}" for s, n in sorted(result.splits.items()))
    print(f"published {result.dataset!r}: {result.rows} pairs ({splits}) in {len(result.shards)} shards, "
          f"{result.folder_bytes / 1e6:.1f} MB -> {result.folder}")
    print(f"shards: {result.shards_written} written, {result.shards_reused} verified and kept from an earlier run; "
          f"{result.seconds:.1f} s; manifest hash {result.manifest_hash[:16]}…")
    print(f"load it with datasets.load_dataset({str(result.folder)!r}) or isp_bench.hub.load(...)")
    if result.repo_url:
        print(f"uploaded: {result.repo_url}")
    return 0
