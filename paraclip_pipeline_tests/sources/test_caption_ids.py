"""The caption ids' first pass: exact repeats, found with the hashes on disk (issue 14)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa

from paraclip_pipeline.sources.readers.caption_ids import (
    _sample_id_hashes,
    repeated_sample_id_hashes,
)


def _batches(rows: int, batch_rows: int, repeat_every: int) -> list[pa.Array]:
    """String ids ``0..rows`` where every ``repeat_every``-th row repeats an earlier id."""
    ids = np.arange(rows)
    ids[::repeat_every] //= 2
    strings = pa.array(ids).cast(pa.string())
    return [strings.slice(start, batch_rows) for start in range(0, rows, batch_rows)]


def test_repeats_are_exact_across_batches_and_spill_files(tmp_path: Path) -> None:
    batches = _batches(50_000, 3_000, repeat_every=7)
    batches.append(pa.array([None, "2", None], pa.string()))  # nulls are not sample ids
    hashes = np.concatenate([_sample_id_hashes(batch) for batch in batches])
    values, counts = np.unique(hashes, return_counts=True)
    repeated = repeated_sample_id_hashes(iter(batches), tmp_path)
    assert np.array_equal(repeated, values[counts > 1])
    assert len(repeated) > 1_000
    assert not list(tmp_path.iterdir())  # the spill files are gone


def test_the_hashes_are_not_held_in_memory(tmp_path: Path) -> None:
    """2M sample ids (16 MB of hashes): the first pass's traced peak stays near one batch's."""
    batches = _batches(2_000_000, 20_000, repeat_every=1_000)
    tracemalloc.start()
    try:
        repeated_sample_id_hashes(iter(batches), tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"{peak / 2**20:.1f} MB"
