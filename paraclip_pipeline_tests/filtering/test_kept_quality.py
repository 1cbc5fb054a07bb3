"""kept_quality: the training gate's counts, streamed for a sorted kept file, by DuckDB else."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from paraclip_pipeline import schema
from paraclip_pipeline.filtering import stream
from paraclip_pipeline.filtering.stream import kept_quality


def _kept(ids: list[str]) -> pa.Table:
    rows = [
        {
            schema.CAPTION_ID: caption_id,
            schema.SHARD: "s",
            schema.TEXT: "a dog" if index != 3 else "",
            schema.PARAPHRASE_1: "a hound",
            schema.PARAPHRASE_2: "a canine",
            schema.SPLIT: "train",
        }
        for index, caption_id in enumerate(ids)
    ]
    table = pa.Table.from_pylist(rows)
    index = table.schema.get_field_index(schema.PARAPHRASE_2)
    nulled = pa.array([None if i == 6 else v for i, v in enumerate(table[index].to_pylist())])
    return table.set_column(index, schema.PARAPHRASE_2, nulled)


@pytest.mark.parametrize("ordered", [True, False])
def test_repeated_ids_and_empty_texts_are_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ordered: bool
) -> None:
    monkeypatch.setattr(stream, "STREAM_BATCH_ROWS", 10)  # a batch per row group
    ids = [f"{n:04x}" for n in range(20)]
    ids[10] = ids[9]  # a repeat on a row group boundary (row groups of 10 rows)
    ids[15] = ids[16]
    if not ordered:
        ids.reverse()
    path = tmp_path / "kept.parquet"
    pq.write_table(_kept(ids), path, row_group_size=10)
    quality = kept_quality(path)
    assert quality.duplicate_ids == 2
    assert quality.empty_text_cells == 2
    assert quality.mismatched_columns == []


def test_a_file_without_ids_counts_every_row_and_names_the_columns(tmp_path: Path) -> None:
    table = _kept(["a", "b", "c"]).drop_columns([schema.CAPTION_ID])
    table = table.set_column(0, schema.SHARD, pa.array([1, 2, 3]))
    path = tmp_path / "kept.parquet"
    pq.write_table(table, path)
    quality = kept_quality(path)
    assert quality.mismatched_columns == [schema.CAPTION_ID, schema.SHARD]
    assert quality.duplicate_ids == 3
