"""Refuse to score a checkpoint on test rows whose caption it was trained on.

A checkpoint records the caption_ids it trained on; their texts come from the filtered
pairs of every shard. Ids are not enough: the same caption in two shards, or a split
redrawn after training (a new salt or test_fraction), puts a trained caption among the
test rows under another id. The comparison is of normalised texts (case, punctuation
and spacing folded, as the split hashes them), so such a test score is refused instead
of reported as held-out.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc

from paraclip_pipeline import schema
from paraclip_pipeline.evaluation.errors import EvaluationError
from paraclip_pipeline.filtering.features import normalise_texts

EXAMPLES = 3


class LeakageError(EvaluationError):
    """The checkpoint was trained on captions of the test rows it would be scored on."""


def leaked_test_captions(
    trained_caption_ids: Iterable[str] | pa.Array | pa.ChunkedArray,
    pairs: Iterable[pa.Table | pa.RecordBatch],
    test_rows: pa.Table,
) -> list[str]:
    """Test captions (as written in ``test_rows``) whose normalised text a trained row had.

    ``pairs`` holds every row the trained ids may name (caption_id, text), as a stream of
    tables, so millions of training rows are never held at once: each batch keeps only
    its rows whose normalised text is a test caption's (the test rows themselves, and any
    copy), and only those are checked against the trained ids, once, at the end. Memory
    is set by the test rows, a batch and the id array.
    """
    test_texts = test_rows[schema.TEXT].to_pylist()
    normalised_tests = normalise_texts(test_texts)
    wanted = set(normalised_tests)
    candidate_ids: list[str] = []
    candidate_texts: list[str] = []
    for batch in pairs:
        normalised = normalise_texts(batch[schema.TEXT].to_pylist())
        for caption_id, text in zip(batch[schema.CAPTION_ID].to_pylist(), normalised, strict=True):
            if text in wanted:
                candidate_ids.append(caption_id)
                candidate_texts.append(text)
    trained = (
        trained_caption_ids
        if isinstance(trained_caption_ids, pa.Array | pa.ChunkedArray)
        else pa.array(list(trained_caption_ids), pa.string())
    )
    was_trained = pc.is_in(pa.array(candidate_ids, pa.string()), value_set=trained)
    leaked = {
        text for text, hit in zip(candidate_texts, was_trained.to_pylist(), strict=True) if hit
    }
    return [
        text
        for text, normalised in zip(test_texts, normalised_tests, strict=True)
        if normalised in leaked
    ]


def refuse_leaked_checkpoint(
    checkpoint_id: str,
    trained_caption_ids: Iterable[str] | pa.Array | pa.ChunkedArray,
    pairs: Iterable[pa.Table | pa.RecordBatch],
    test_rows: pa.Table,
) -> None:
    """Raise LeakageError when any test caption was trained on (see leaked_test_captions)."""
    leaked = leaked_test_captions(trained_caption_ids, pairs, test_rows)
    if leaked:
        examples = "; ".join(repr(text) for text in leaked[:EXAMPLES])
        raise LeakageError(
            f"checkpoint {checkpoint_id} trained on {len(leaked)} of the {len(test_rows)} test "
            f"captions, e.g. {examples}; retrain on the current split (or restore the split it "
            "was trained with) before scoring it"
        )
