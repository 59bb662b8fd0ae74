"""Shared pytest fixtures.

Tests that read the reference material in ``../shared`` find it through ``ISP_BENCH_SHARED``
(default: ``../shared`` beside the checkout). Without it they skip with a reason, unless
``ISP_BENCH_REQUIRE_SHARED=1`` (set by ``.ci/run``), in which case they fail.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Tests never download: weights with a published location are fetched on first use only online.
os.environ.setdefault("ISP_BENCH_OFFLINE", "1")
# Preprocessing caches go where each test puts them, not into a folder the user set for real runs.
os.environ.pop("ISP_BENCH_CACHE", None)

# The ingest read path's test-only crash hook (isp_bench.ingest): one folder for the whole session, in the
# environment before any worker process starts, removed at exit.
if "ISP_BENCH_TEST_CRASH_DIR" not in os.environ:
    os.environ["ISP_BENCH_TEST_CRASH_DIR"] = tempfile.mkdtemp(prefix="isp-bench-crash-")
    atexit.register(shutil.rmtree, os.environ["ISP_BENCH_TEST_CRASH_DIR"], ignore_errors=True)


def shared_root() -> Path:
    return Path(os.environ.get("ISP_BENCH_SHARED", REPO_ROOT.parent / "shared")).resolve()


@pytest.fixture(scope="session")
def shared() -> Path:
    """Path to the ``shared`` reference folder (raw samples, split lists, metric vectors)."""
    root = shared_root()
    if not root.is_dir():
        message = f"shared reference folder not found at {root}; set ISP_BENCH_SHARED to its path"
        if os.environ.get("ISP_BENCH_REQUIRE_SHARED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return root


SMALL_SYNTH = dict(scenes=6, height=64, width=96)


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Iterator[Path]:
    """A small synthetic dataset written once per test session, read-only for tests: a test that trains or scores
    on it copies it first (a run writes its cache into the dataset root). The session fails at teardown if a test
    added, removed or rewrote a file in it, whatever order the tests ran in."""
    from isp_bench.synth import SynthConfig, generate

    root = generate(tmp_path_factory.mktemp("synth") / "data", SynthConfig(**SMALL_SYNTH), workers=1, progress=False)
    written = _stat_tree(root)
    yield root
    changed = sorted(set(written.items()) ^ set(_stat_tree(root).items()))
    assert not changed, f"tests changed the session's synth_root (copy it before writing): {changed[:5]}"


def _stat_tree(root: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file()}
