"""The report refuses a checkpoint that was trained on its test captions."""

from __future__ import annotations

import pyarrow as pa
import pytest

from paraclip_pipeline import schema
from paraclip_pipeline.evaluation.leakage import (
    LeakageError,
    leaked_test_captions,
    refuse_leaked_checkpoint,
)

PAIRS = pa.table(
    {
        schema.CAPTION_ID: ["a/0", "a/1", "b/0", "b/1", "b/2"],
        schema.TEXT: [
            "A dog runs on the beach.",
            "two cats on a sofa",
            "a dog runs on the beach",  # the same caption in shard b, another id
            "a red bus",
            "A man riding a horse",
        ],
    }
)
TEST_ROWS = PAIRS.take([2, 3, 4])
# The training rows arrive as a stream of batches (two rows each), as the report reads them.
BATCHES = PAIRS.to_batches(max_chunksize=2)


def test_a_checkpoint_trained_on_a_test_caption_is_refused_with_the_count_and_an_example() -> None:
    # Trained on a/0 and a/1: b/0 is the same caption under another id in another shard.
    assert leaked_test_captions(["a/0", "a/1"], BATCHES, TEST_ROWS) == ["a dog runs on the beach"]
    with pytest.raises(
        LeakageError,
        match=r"^checkpoint run-7 trained on 1 of the 3 test captions, e\.g\. "
        r"'a dog runs on the beach'; retrain",
    ):
        refuse_leaked_checkpoint("run-7", ["a/0", "a/1"], BATCHES, TEST_ROWS)


def test_a_checkpoint_trained_on_other_captions_is_scored() -> None:
    refuse_leaked_checkpoint("run-8", ["a/1"], BATCHES, TEST_ROWS)
    assert leaked_test_captions([], BATCHES, TEST_ROWS) == []
    trained = pa.chunked_array([["a/0"], ["b/2"]])  # as read from a checkpoint: an Arrow column
    assert leaked_test_captions(trained, BATCHES, TEST_ROWS) == [
        "a dog runs on the beach",
        "A man riding a horse",
    ]


def test_every_leaked_caption_is_counted() -> None:
    with pytest.raises(LeakageError, match="trained on 3 of the 3 test captions"):
        refuse_leaked_checkpoint("run-9", ["a/0", "b/1", "b/2"], BATCHES, TEST_ROWS)
