"""Ranges of uniformly spread hex keys (paraphrase cache keys, caption ids) of about a given
number of keys each, so a DuckDB query over one range stays small however big the shard.

A range count is a power of two and splits the space on the keys' first three hex digits,
so range ``i`` of ``count`` holds the keys from ``bounds[i - 1]`` (inclusive) to
``bounds[i]`` (exclusive) of ``range_bounds(count)``, the first range open below and the
last open above: every string, hex or not, lands in exactly one range, and the ranges in
order are the keys in sorted (code point, i.e. DuckDB's and Arrow's) order.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

PREFIX_DIGITS = 3
PREFIX_SPACE = 16**PREFIX_DIGITS


def range_count(keys: int, per_range: int) -> int:
    """The fewest ranges, a power of two up to ``PREFIX_SPACE``, of at most about
    ``per_range`` of ``keys`` uniform keys each."""
    count = 1
    while count < PREFIX_SPACE and count * per_range < keys:
        count *= 2
    return count


def range_bounds(count: int) -> list[str]:
    """The ``count - 1`` inner bounds of ``count`` ranges (see the module docstring)."""
    return [f"{number * PREFIX_SPACE // count:03x}" for number in range(1, count)]


def range_numbers(keys: pa.Array | pa.ChunkedArray, bounds: list[str]) -> np.ndarray:
    """Each key's range number under ``bounds``. A bound of three characters is at most a
    key exactly when it is at most the key's first three, so the keys' few distinct
    prefixes are placed (a dictionary) instead of every key."""
    prefixes = pc.utf8_slice_codeunits(keys, 0, PREFIX_DIGITS)
    if isinstance(prefixes, pa.ChunkedArray):
        prefixes = prefixes.combine_chunks()
    encoded = prefixes.dictionary_encode()
    distinct = np.asarray(encoded.dictionary.to_pylist(), dtype=str)
    placed = np.searchsorted(np.asarray(bounds, dtype=str), distinct, side="right")
    return placed[encoded.indices.to_numpy()]
