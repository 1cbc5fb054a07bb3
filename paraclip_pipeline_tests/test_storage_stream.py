"""parquet_stream: batch-by-batch atomic Parquet writes whose hash is table_fingerprint's."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from paraclip_pipeline.storage import (
    StreamingFingerprint,
    parquet_stream,
    row_group_batches,
    table_fingerprint,
)


def _table(rows: int) -> pa.Table:
    return pa.table(
        {
            "id": [f"id-{i}" for i in range(rows)],
            "text": [None if i % 4 == 0 else "word " * (i % 7) for i in range(rows)],
            "vec": [None if i % 5 == 0 else [float(i)] * (i % 3) for i in range(rows)],
            "n": pa.array(range(rows), pa.int64()),
        },
        schema=pa.schema(
            [
                ("id", pa.string()),
                ("text", pa.string()),
                ("vec", pa.list_(pa.float32())),
                ("n", pa.int64()),
            ]
        ),
    )


def _streamed(table: pa.Table, batch_rows: int, block_rows: int) -> str:
    fingerprint = StreamingFingerprint(table.schema, block_rows=block_rows)
    for batch in table.to_batches(max_chunksize=batch_rows):
        fingerprint.update(batch)
    return fingerprint.hexdigest()


@pytest.mark.parametrize("rows", [0, 1, 9, 64])
def test_streamed_fingerprint_equals_table_fingerprint_up_to_one_block(rows: int) -> None:
    table = _table(rows)
    for batch_rows in (1, 3, 64):
        assert _streamed(table, batch_rows, block_rows=64) == table_fingerprint(table)


def test_streamed_fingerprint_does_not_depend_on_the_batching() -> None:
    table = _table(23)
    values = {_streamed(table, batch_rows, block_rows=4) for batch_rows in (1, 3, 4, 5, 23)}
    assert len(values) == 1
    assert _streamed(table.slice(1), 5, block_rows=4) not in values


def test_parquet_stream_writes_the_rows_and_their_fingerprint(tmp_path: Path) -> None:
    table = _table(50)
    target = tmp_path / "out" / "t.parquet"
    with parquet_stream(target, table.schema) as writer:
        for batch in table.to_batches(max_chunksize=7):
            writer.write(batch)
        assert not target.exists()  # published only at the end
    assert pq.read_table(target).equals(table)
    assert writer.rows == 50
    assert writer.fingerprint == table_fingerprint(table)


def test_parquet_stream_failure_keeps_the_previous_file(tmp_path: Path) -> None:
    table = _table(5)
    target = tmp_path / "t.parquet"
    target.write_bytes(b"previous")
    with pytest.raises(RuntimeError, match="stop"), parquet_stream(target, table.schema) as writer:
        writer.write(table)
        raise RuntimeError("stop")
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]


def test_parquet_stream_refuses_a_batch_of_another_schema(tmp_path: Path) -> None:
    with (
        pytest.raises(ValueError, match="differs"),
        parquet_stream(tmp_path / "t.parquet", _table(1).schema) as writer,
    ):
        writer.write(pa.table({"x": [1]}))


@pytest.mark.parametrize("row_group_rows", [1, 7, 64, 100, 300])
def test_row_group_batches_are_the_whole_file_batches(tmp_path: Path, row_group_rows: int) -> None:
    """One row group at a time, yet the same batches as ``iter_batches`` over the file,
    including those that straddle row groups."""
    table = _table(300)
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, row_group_size=row_group_rows)
    parquet_file = pq.ParquetFile(path)
    for batch_rows in (1, 5, 64, 100, 299, 300, 1000):
        expected = list(parquet_file.iter_batches(batch_size=batch_rows, columns=["id", "vec"]))
        got = list(row_group_batches(parquet_file, batch_rows, ["id", "vec"]))
        assert [batch.num_rows for batch in got] == [batch.num_rows for batch in expected]
        assert all(a.equals(b) for a, b in zip(got, expected, strict=True)), batch_rows
