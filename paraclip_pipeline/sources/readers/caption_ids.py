"""Stable caption ids, unique across shards.

``caption_id``
    16 hex characters of blake2b over ``(shard key, row key, occurrence)``: the row key is
    ``sample:<SAMPLE_ID>`` when the row has a sample id and ``row:<source_row>`` otherwise,
    and the occurrence counts earlier rows of the shard with the same row key (duplicate
    sample ids stay distinct). Reading the same file always gives the same ids; ids of rows
    with a sample id survive edits elsewhere in the file, row-keyed ids do not. The shard
    key is part of the hash, so ids are unique across shards.

Streaming a shard, occurrences are counted in two passes so memory stays near the batch
size: the first finds the sample ids that may repeat from a 64-bit hash per sample id; the
second counts occurrences, by the exact row key, of those alone. A hash collision only
makes a unique id a candidate, so the ids are exact. The hashes (8 bytes a row, the one
per-row state of ingestion: 96 MB for a 12M-row shard) go to disk, not memory (see
``repeated_sample_id_hashes``).
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from collections.abc import Iterable
from os import PathLike
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from paraclip_pipeline.scratch import scratch_directory


def _row_key(sample_id: str | None, source_row: int) -> str:
    return f"sample:{sample_id}" if sample_id is not None else f"row:{source_row}"


def _hashed_caption_id(shard_key: str, row_key: str, occurrence: int) -> str:
    material = f"{shard_key}\x1f{row_key}\x1f{occurrence}".encode()
    return hashlib.blake2b(material, digest_size=8).hexdigest()


def make_caption_id(shard_key: str, sample_id: str | None, source_row: int, occurrence: int) -> str:
    """The caption id rule of the module docstring."""
    return _hashed_caption_id(shard_key, _row_key(sample_id, source_row), occurrence)


def _sample_id_hashes(sample_ids: pa.Array) -> np.ndarray:
    present = sample_ids.drop_null()
    series = pl.Series(present) if len(present) else pl.Series([], dtype=pl.String)
    return series.hash(seed=0).to_numpy()


# Hashes are spilled to this many files by their top bits; finding repeats holds one file.
SPILL_BUCKETS = 64
_BUCKET_SHIFT = np.uint64(64 - (SPILL_BUCKETS.bit_length() - 1))


def _repeats(hashes: np.ndarray) -> np.ndarray:
    """Sorted distinct values occurring more than once; sorts ``hashes`` in place."""
    hashes.sort()
    return np.unique(hashes[1:][hashes[1:] == hashes[:-1]])


def repeated_sample_id_hashes(
    sample_id_batches: Iterable[pa.Array], spill_dir: str | PathLike[str] | None = None
) -> np.ndarray:
    """Sorted hashes of the sample ids that occur more than once (or collide).

    Each batch's hashes are appended to one of ``SPILL_BUCKETS`` files (by their top bits)
    in a temporary directory under ``spill_dir`` (default: the system's), and each file is
    then sorted alone, so memory holds a batch, then 1/64 of the hashes, never all of them.
    Held in memory (a list of per-batch arrays, concatenated and sorted), they were the
    largest part of raw_captions' peak on bench_data_scale's 5M-row shard: 99 of the 254 MB
    memray counted live at the peak, where the 100k-row shard had 6.5 MB.
    """
    parent = Path(tempfile.gettempdir() if spill_dir is None else spill_dir)
    with scratch_directory(parent, "caption-ids-") as scratch:
        paths = [scratch / f"{bucket:02d}.u64" for bucket in range(SPILL_BUCKETS)]
        with contextlib.ExitStack() as files:
            handles = [files.enter_context(path.open("wb")) for path in paths]
            for batch in sample_id_batches:
                hashes = np.sort(_sample_id_hashes(batch))
                starts = np.searchsorted(
                    hashes >> _BUCKET_SHIFT, np.arange(SPILL_BUCKETS + 1, dtype=np.uint64)
                )
                for bucket, handle in enumerate(handles):
                    hashes[starts[bucket] : starts[bucket + 1]].tofile(handle)
        return np.concatenate([_repeats(np.fromfile(path, np.uint64)) for path in paths])


class CaptionIdAssigner:
    """``caption_ids`` batch by batch, given the first pass's ``repeated_sample_id_hashes``."""

    def __init__(self, shard_key: str, repeated_hashes: np.ndarray) -> None:
        self._shard_key = shard_key
        self._repeated = repeated_hashes
        self._occurrences: dict[str, int] = {}

    def assign(self, sample_ids: pa.Array, source_rows: list[int]) -> list[str]:
        ids = sample_ids.to_pylist()
        counted = np.zeros(len(ids), bool)
        if len(self._repeated):
            present = np.flatnonzero(~np.asarray(sample_ids.is_null()))
            hashes = _sample_id_hashes(sample_ids)
            counted[present] = np.isin(hashes, self._repeated)
        result: list[str] = []
        for sample_id, source_row, count in zip(ids, source_rows, counted, strict=True):
            row_key = _row_key(sample_id, source_row)
            occurrence = 0
            if count:
                occurrence = self._occurrences.get(row_key, 0)
                self._occurrences[row_key] = occurrence + 1
            result.append(_hashed_caption_id(self._shard_key, row_key, occurrence))
        return result
