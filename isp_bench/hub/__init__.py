"""Publishing datasets to the Hugging Face Hub and loading them back (DESIGN §1: manifests →
``isp_bench.hub`` → Hugging Face dataset with Parquet shards and a dataset card).

- :func:`publish`: manifest + dataset root → Hub-ready folder (``data/<split>-NNNNN-of-MMMMM.parquet``
  shards holding every manifest column and the files" original bytes, ``README.md`` card), and
  optionally an upload with ``huggingface_hub``. Refuses sources that may not be redistributed.
- :func:`load`: a published folder or Hub repository → manifest-equivalent table, raw rows
  decoded into RawCapture on demand, or written back as a dataset root + manifest.
"""

from isp_bench._lazy import lazy_package

# name -> submodule; imported on first use, so importing the package stays cheap (`isp-bench --help`)
_EXPORTS = {
    **dict.fromkeys(("CardError", "build_card", "data_files", "read_card"), ".card"),
    **dict.fromkeys(("HubLoadError", "PublishedDataset", "load"), ".load"),
    **dict.fromkeys(("PublishError", "PublishResult", "RedistributionError", "ShardPlan", "check_redistributable",
                     "plan_shards", "publish", "upload"), ".publish"),
}
__all__ = sorted(_EXPORTS)
lazy_package(__name__, _EXPORTS)
