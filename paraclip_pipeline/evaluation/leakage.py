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
    trained_caption_ids: Iterable[str], pairs: pa.Table, test_rows: pa.Table
) -> list[str]:
    """Test captions (as written in ``test_rows``) whose normalised text a trained row had.

    ``pairs`` holds every row the trained ids may name (caption_id, text); ``test_rows``
    the rows to be scored (text).
    """
    trained = pairs.filter(
        pc.is_in(pairs[schema.CAPTION_ID], pa.array(list(trained_caption_ids), pa.string()))
    )
    trained_texts = set(normalise_texts(trained[schema.TEXT].to_pylist()))
    test_texts = test_rows[schema.TEXT].to_pylist()
    return [
        text
        for text, normalised in zip(test_texts, normalise_texts(test_texts), strict=True)
        if normalised in trained_texts
    ]


def refuse_leaked_checkpoint(
    checkpoint_id: str, trained_caption_ids: Iterable[str], pairs: pa.Table, test_rows: pa.Table
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
