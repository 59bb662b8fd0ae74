"""Mutation fuzzing of read_raw (isp_bench.raw.fuzz; the 5 000-file run is benchmarks/fuzz_raw.py)."""

from __future__ import annotations

import numpy as np
import pytest

from isp_bench.errors import ExifError, NotMosaicError, TruncatedFileError
from isp_bench.raw import read_raw
from isp_bench.raw.fuzz import MUTATIONS, fuzz_read_raw, mutate, mutated_file, plan, sample_sources


@pytest.fixture(scope="module")
def sources(shared):
    return sample_sources(shared / "raw-samples")


def test_seeded_fuzz_has_no_escapes_crashes_or_hangs(sources):
    report = fuzz_read_raw(sources, 200, seed=20240601, workers=2)
    summary = report.summary()
    assert len(report.outcomes) == 200
    assert [(o.index, o.status, o.error) for o in report.failures] == []
    assert summary["ok"] + summary["refused"] == 200
    assert summary["refused"] > 100  # the mutations do break files (and every break is an IspBenchError)
    assert {o.mutation for o in report.outcomes} == set(MUTATIONS)
    assert {o.source for o in report.outcomes} == {s.name for s in sources}


# Files the 5 000-file runs (benchmarks/fuzz_raw.py, seeds 0 to 3) found escaping read_raw before the fix.
ESCAPES = [
    (0, 3085, ExifError, "exifread cannot parse"),  # OSError (seek to a negative offset) from exifread
    (0, 349, NotMosaicError, "colour filter layout"),  # NotImplementedError from rawpy's raw_pattern
    (0, 2771, ExifError, "not numerator/denominator pairs"),  # ValueError: odd-length RATIONAL tag
    (1, 241, NotMosaicError, "not a Bayer RGB mosaic"),  # IndexError: CFA colour index past color_desc
    (3, 2839, TruncatedFileError, "LibRawTooBigError"),  # raised by rawpy's lazy unpack, outside the mapping
]


@pytest.mark.parametrize(("seed", "index", "error", "reason"), ESCAPES)
def test_escapes_found_by_fuzzing_are_isp_bench_errors(sources, tmp_path, seed, index, error, reason):
    path = mutated_file(sources, seed, index, tmp_path)
    with pytest.raises(error, match=reason) as info:
        read_raw(path)
    assert str(path) in str(info.value) and info.value.fix  # names the file and says what to do


def test_mutations_are_seeded_and_change_the_file():
    data = bytes(range(256)) * 40
    for kind in MUTATIONS:
        a, b = (mutate(data, kind, np.random.default_rng([7, 3])) for _ in range(2))
        assert a == b and a != data
    assert len(mutate(data, "truncation", np.random.default_rng(1))) < len(data)
    assert len(mutate(data, "duplicate_chunk", np.random.default_rng(1))) > len(data)
    flipped = mutate(data, "header_flips", np.random.default_rng(1))
    assert flipped[1024:] == data[1024:]


def test_plan_gives_every_container_every_mutation(sources):
    planned = {(plan(sources, i)[0], plan(sources, i)[1]) for i in range(len(sources) * len(MUTATIONS))}
    assert len(planned) == len(sources) * len(MUTATIONS)


def test_a_worker_past_its_timeout_is_a_hang_and_is_replaced(sources):
    report = fuzz_read_raw(sources[:1], 2, seed=0, timeout_s=1e-9)  # no worker answers within a nanosecond
    assert [o.status for o in report.outcomes] == ["hang", "hang"]
    assert report.worker_restarts == 2
