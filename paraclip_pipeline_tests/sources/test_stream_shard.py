"""stream_shard: the same rows, ids and image problems in any batch size, and errors still
name the file (issue 14)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from paraclip_pipeline import schema
from paraclip_pipeline.sources import ShardFile, ShardReadError, stream_shard
from paraclip_pipeline_tests.sources.builders import jsonl_bytes, laion_parquet, two_file

# Duplicate sample ids far apart (they straddle batches), a missing id, a bad image path.
SAMPLE_IDS = ["a", "b", None, "a", "c", "b", "a", None, "d", "e", "a"]


def _gathered(shard: ShardFile, batch_rows: int) -> tuple[pa.Table, list[str], int]:
    stream = stream_shard(shard, batch_rows=batch_rows)
    tables, problems, largest = [], [], 0
    for table, batch_problems in stream.batches:
        tables.append(table)
        problems.extend(str(problem) for problem in batch_problems)
        largest = max(largest, len(table))
    return pa.concat_tables(tables).combine_chunks(), problems, largest


def _shards(directory: Path) -> list[ShardFile]:
    captions = [f"a photo of thing {i}\u0007" for i in range(len(SAMPLE_IDS))]
    records = [
        {"id": sample_id, "caption": caption, "image_path": "../out.jpg" if i == 4 else None}
        for i, (sample_id, caption) in enumerate(zip(SAMPLE_IDS, captions, strict=True))
    ]
    lines = [json.dumps(record) for record in records]
    lines.insert(3, "   ")  # a blank line: skipped, later rows keep their line numbers
    return [
        jsonl_bytes(directory, "j", ("\n".join(lines) + "\n").encode()),
        laion_parquet(directory, "p", {"TEXT": captions, "SAMPLE_ID": SAMPLE_IDS}),
        two_file(
            directory,
            "t",
            "\r\n".join(captions).encode(),
            "\n".join(s or "" for s in SAMPLE_IDS).encode(),
        ),
    ]


def test_streaming_gives_the_same_rows_in_every_batch_size(tmp_path: Path) -> None:
    for shard in _shards(tmp_path):
        whole, whole_problems, _ = _gathered(shard, batch_rows=1000)
        assert whole.schema.equals(schema.RAW_CAPTIONS_SCHEMA)
        assert len(set(whole[schema.CAPTION_ID].to_pylist())) == len(SAMPLE_IDS)
        for batch_rows in (1, 2, 3, 5):
            table, problems, largest = _gathered(shard, batch_rows)
            assert table.equals(whole), (shard.key, batch_rows)
            assert problems == whole_problems
            assert largest <= batch_rows


def test_jsonl_keeps_line_numbers_across_batches(tmp_path: Path) -> None:
    table, problems, _ = _gathered(_shards(tmp_path)[0], batch_rows=2)
    assert table[schema.SOURCE_ROW].to_pylist() == [0, 1, 2, *range(4, 12)]
    assert problems == ["row 5 '../out.jpg': escaping"]


def test_two_file_length_mismatch_counts_both_files(tmp_path: Path) -> None:
    shard = two_file(tmp_path, "t", b"one\ntwo\nthree\nfour\n", b"1\n2\n")
    with pytest.raises(ShardReadError, match=r"captions\.txt has 4 lines but img_ids\.txt has 2"):
        _gathered(shard, batch_rows=1)
    shard = two_file(tmp_path, "u", b"one\n", b"1\n2\n3\n")
    with pytest.raises(ShardReadError, match=r"captions\.txt has 1 lines but img_ids\.txt has 3"):
        _gathered(shard, batch_rows=1)


def test_mixed_embedding_sizes_in_later_batches_name_the_file(tmp_path: Path) -> None:
    shard = laion_parquet(
        tmp_path,
        "e",
        {
            "TEXT": ["a b", "c d", "e f"],
            "image_embedding": [[1.0, 2.0], [1.0, 2.0], [1.0]],
            "image_embedding_model": ["m"] * 3,
        },
    )
    with pytest.raises(ShardReadError, match=r"e\.parquet: .* mixes embedding sizes \[1, 2\]"):
        _gathered(shard, batch_rows=1)
