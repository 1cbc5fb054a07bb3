"""Training data preparation: one row per normalised caption across shards."""

from __future__ import annotations

import pyarrow as pa

from paraclip_pipeline import schema
from paraclip_pipeline.training.data import prepare_training_data
from paraclip_pipeline_tests.training.support import make_embeddings, make_pairs


def _with_text(pairs: pa.Table, updates: dict[str, tuple[str, str]]) -> pa.Table:
    """``pairs`` with rows (by caption_id) given a new shard and caption text."""
    rows = pairs.to_pylist()
    for row in rows:
        if row[schema.CAPTION_ID] in updates:
            row[schema.SHARD], row[schema.TEXT] = updates[row[schema.CAPTION_ID]]
    return pa.Table.from_pylist(rows, schema=pairs.schema)


def test_the_same_caption_in_two_shards_is_trained_on_once() -> None:
    pairs = _with_text(
        make_pairs(10),
        {
            "c002": ("shard-b", "A red boat, on the river."),
            "c007": ("shard-a", "a red boat on the river"),
            "c004": ("shard-c", "A RED BOAT ON THE RIVER!"),
            "c005": ("shard-b", "two dogs"),
            "c009": ("shard-a", "Two  dogs."),
        },
    )
    # Shards arrive in any order: the kept row must not depend on it.
    shuffled = pairs.take([9, 3, 7, 0, 5, 2, 8, 4, 1, 6, 10, 11])
    data = prepare_training_data(shuffled, make_embeddings(pairs, "m", 8))
    assert data.duplicate_captions_dropped == 3
    assert "c002" in data.caption_ids and "c005" in data.caption_ids
    assert not {"c004", "c007", "c009"} & set(data.caption_ids)
    assert data.caption_ids == sorted(data.caption_ids) and len(data) == 7
    assert data.captions[data.caption_ids.index("c002")] == "A red boat, on the river."


def test_distinct_captions_lose_nothing() -> None:
    pairs = make_pairs(10)
    data = prepare_training_data(pairs, make_embeddings(pairs, "m", 8))
    assert data.duplicate_captions_dropped == 0 and len(data) == 10
