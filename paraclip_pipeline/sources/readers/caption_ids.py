"""Stable caption ids, unique across shards.

``caption_id``
    16 hex characters of blake2b over ``(shard key, row key, occurrence)``: the row key is
    ``sample:<SAMPLE_ID>`` when the row has a sample id and ``row:<source_row>`` otherwise,
    and the occurrence counts earlier rows of the shard with the same row key (duplicate
    sample ids stay distinct). Reading the same file always gives the same ids; ids of rows
    with a sample id survive edits elsewhere in the file, row-keyed ids do not. The shard
    key is part of the hash, so ids are unique across shards.
"""

from __future__ import annotations

import hashlib


def _row_key(sample_id: str | None, source_row: int) -> str:
    return f"sample:{sample_id}" if sample_id is not None else f"row:{source_row}"


def _hashed_caption_id(shard_key: str, row_key: str, occurrence: int) -> str:
    material = f"{shard_key}\x1f{row_key}\x1f{occurrence}".encode()
    return hashlib.blake2b(material, digest_size=8).hexdigest()


def make_caption_id(shard_key: str, sample_id: str | None, source_row: int, occurrence: int) -> str:
    """The caption id rule of the module docstring."""
    return _hashed_caption_id(shard_key, _row_key(sample_id, source_row), occurrence)


def caption_ids(shard_key: str, sample_ids: list[str | None], source_rows: list[int]) -> list[str]:
    occurrences: dict[str, int] = {}
    caption_ids: list[str] = []
    for sample_id, source_row in zip(sample_ids, source_rows, strict=True):
        row_key = _row_key(sample_id, source_row)
        occurrence = occurrences.get(row_key, 0)
        occurrences[row_key] = occurrence + 1
        caption_ids.append(_hashed_caption_id(shard_key, row_key, occurrence))
    return caption_ids
