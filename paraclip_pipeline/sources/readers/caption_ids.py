"""Stable caption ids, unique across shards.

``caption_id``
    16 hex characters of blake2b over ``(shard key, row key, occurrence)``: the row key is
    ``sample:<SAMPLE_ID>`` when the row has a sample id and ``row:<source_row>`` otherwise,
    and the occurrence counts earlier rows of the shard with the same row key (duplicate
    sample ids stay distinct). Reading the same file always gives the same ids; ids of rows
    with a sample id survive edits elsewhere in the file, row-keyed ids do not. The shard
    key is part of the hash, so ids are unique across shards.

Streaming a shard, occurrences are counted in two passes so memory stays near the batch
size: the first keeps only a 64-bit hash per sample id (8 bytes a row: 96 MB for a 12M-row
shard, the one per-row state of ingestion) to find the sample ids that may repeat; the
second counts occurrences, by the exact row key, of those alone. A hash collision only
makes a unique id a candidate, so the ids are exact.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
import polars as pl
import pyarrow as pa


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


def repeated_sample_id_hashes(sample_id_batches: Iterable[pa.Array]) -> np.ndarray:
    """Sorted hashes of the sample ids that occur more than once (or collide).

    Sorted in place and compared with their neighbours: about 17 bytes a row at the peak,
    where ``np.unique(..., return_counts=True)`` copies, sorts and indexes (about 40);
    raw_captions' peak RSS on a 5M-row shard 633 -> 610 MB (bench_data_scale's shard).
    """
    parts = [_sample_id_hashes(batch) for batch in sample_id_batches]
    if not parts:
        return np.empty(0, np.uint64)
    hashes = np.concatenate(parts)
    del parts
    hashes.sort()
    return np.unique(hashes[1:][hashes[1:] == hashes[:-1]])


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
