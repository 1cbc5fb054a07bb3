"""The filter's whole-shard work (unique ids, dedup, the caption_id sort) one range of
caption ids at a time, so no DuckDB query sorts or windows more than about ``RANGE_ROWS``
rows however big the shard.

Caption ids are uniform hashes, so ``hex_ranges`` splits them into a power of two of
ranges of about ``RANGE_ROWS`` each: the judged rows are spilled to one file per range
(``split_by_id``), and a repeated id is always in one range. Dedup compares key groups,
which cross ranges, so its keys are split by a hash of the key columns instead (a key
group is always in one part) and each part's window query writes its duplicates, the
rows it rejects, to the file of their caption-id range (``write_duplicates``). Then each
range is sorted alone with its duplicates joined (``sorted_ranges``): the ranges in order
are the shard in caption_id order, the same rows in the same order as one query over all.

Measured with bench_data_scale's filtered_pairs stage (16,384-row batches, peak RSS of
the stage process, runs vary by 10-40 MB): one query over the whole shard (ORDER BY
caption_id, LEFT JOIN the dedup window over every key, DuckDB at its 128 MB cap) peaked
at 521 MB at 100k captions and 644 MB at 1M (1.24x), the sort and write-back alone
taking the process from 440 to 600-650 MB; at 5M it failed ("failed to pin block").
By range: 509-549 MB at 100k, 573-580 MB at 1M, 570 MB at 5M (1.04-1.14x of 100k),
byte-identical outputs, about as fast (1M: 29.5 s before, 31-33 s after on a loaded
2-core machine; 5M: 176-196 s). The 5M shard was the 1M one five times over with new
ids and a word added to each copy's caption.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from paraclip_pipeline import schema
from paraclip_pipeline.duckdb_connection import bounded_connection
from paraclip_pipeline.filtering.apply import FilterInputError
from paraclip_pipeline.hex_ranges import range_bounds, range_count, range_numbers

# Rows a range holds on average: DuckDB's memory for one range's query stays far below
# its limit (the paraphrase cache's lookups measured the same size at 96 MB).
RANGE_ROWS = 1 << 16
# DuckDB's share of the budget: past it, sorts and windows spill to the work directory.
# One thread: each thread holds its own sort runs (with two, the whole-shard sort this
# replaced peaked 250 MB higher at 1M rows than at 100k).
DUCKDB_MEMORY_LIMIT = "128MB"
DUCKDB_THREADS = 1
DUPLICATE_DETAIL = "__duplicate_detail"
_PART = "__part"
_DETAIL = "detail"
# lz4: zstd's setup per small buffer made splitting 5M rows 128 ways 4x slower.
_IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")


class Spill:
    """A Parquet file in the work directory, opened on the first rows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, table.schema, compression="zstd")
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> bool:
        """Close; False when nothing was written."""
        if self._writer is None:
            return False
        self._writer.close()
        return True


class _PartFiles:
    """Arrow IPC files, one per part number, each opened on its first rows.

    A batch split a hundred ways makes a hundred small writes: Parquet writers keep every
    row group's metadata in memory (128 writers given 300 batches of 128 rows each grew
    the process by 470 MB and took 32 s), IPC files only a few bytes per batch (flat,
    7.5 s; 3.5 s uncompressed, but 1.9 GB on disk against lz4's 1.2 GB).
    """

    def __init__(self, directory: Path, name: str, count: int) -> None:
        self._paths = [directory / f"{name}-{number}.arrow" for number in range(count)]
        self._writers: dict[int, pa.ipc.RecordBatchFileWriter] = {}

    def write(self, table: pa.Table, numbers: np.ndarray) -> None:
        """Each row of ``table`` to the file of its part number."""
        order = np.argsort(numbers, kind="stable")
        grouped, table = numbers[order], table.take(order)
        starts = np.flatnonzero(np.diff(grouped, prepend=-1))
        for start, end in zip(starts, [*starts[1:], len(grouped)], strict=True):
            number = int(grouped[start])
            if number not in self._writers:
                self._writers[number] = pa.ipc.new_file(
                    self._paths[number], table.schema, options=_IPC_OPTIONS
                )
            self._writers[number].write_table(table.slice(start, end - start))

    def close(self) -> list[Path | None]:
        """Close all; each part's file, None where it got no rows."""
        for writer in self._writers.values():
            writer.close()
        return [path if n in self._writers else None for n, path in enumerate(self._paths)]


def _read(path: Path) -> pa.Table:
    with pa.OSFile(str(path)) as source:
        return pa.ipc.open_file(source).read_all()


@contextlib.contextmanager
def _registered(
    connection: duckdb.DuckDBPyConnection, tables: dict[str, pa.Table]
) -> Iterator[None]:
    """``tables`` visible to ``connection``'s queries by name for the block."""
    for name, table in tables.items():
        connection.register(name, table)
    try:
        yield
    finally:
        for name in tables:
            connection.unregister(name)


def connect(work_dir: Path) -> duckdb.DuckDBPyConnection:
    """The filter's bounded DuckDB, spilling under ``work_dir``."""
    return bounded_connection(DUCKDB_MEMORY_LIMIT, DUCKDB_THREADS, work_dir / "duckdb")


def id_bounds(rows: int) -> list[str]:
    """The caption-id range bounds for a shard of ``rows`` rows."""
    return range_bounds(range_count(rows, RANGE_ROWS))


def split_by_id(judged: Path, bounds: list[str]) -> list[Path | None]:
    """``judged``'s rows in one file per caption-id range (None: an empty range), read a
    row group at a time; ``judged`` is removed."""
    parts = _PartFiles(judged.parent, judged.stem, len(bounds) + 1)
    try:
        source = pq.ParquetFile(judged)
        for group in range(source.num_row_groups):
            table = source.read_row_group(group)
            parts.write(table, range_numbers(table[schema.CAPTION_ID], bounds))
    finally:
        paths = parts.close()
    judged.unlink()
    return paths


def _batches(
    connection: duckdb.DuckDBPyConnection, query: str, rows: int, parameters: object = None
) -> Iterator[pa.Table]:
    for batch in connection.execute(query, parameters).to_arrow_reader(rows):
        yield pa.Table.from_batches([batch])


def write_duplicates(
    connection: duckdb.DuckDBPyConnection,
    keys: Path,
    key_columns: int,
    bounds: list[str],
    batch_rows: int,
) -> list[Path | None]:
    """Dedup over ``keys`` (caption_id, key_0..): every row of a key group but its smallest
    caption id, with "duplicate of <that id>", in one file per caption-id range; ``keys``
    is removed."""
    group = ", ".join(f"key_{i}" for i in range(key_columns))
    count = range_count(pq.ParquetFile(keys).metadata.num_rows, RANGE_ROWS)
    split = _PartFiles(keys.parent, keys.stem, count)
    try:
        query = f"SELECT *, hash({group}) % {count} AS {_PART} FROM read_parquet(?)"
        for table in _batches(connection, query, batch_rows, [str(keys)]):
            split.write(table.drop_columns([_PART]), table[_PART].to_numpy())
    finally:
        key_parts = split.close()
    keys.unlink()
    window = f"OVER (PARTITION BY {group} ORDER BY {schema.CAPTION_ID})"
    query = (
        f"SELECT {schema.CAPTION_ID}, 'duplicate of ' || first_value({schema.CAPTION_ID}) "
        f"{window} AS {_DETAIL} FROM key_rows QUALIFY row_number() {window} > 1"
    )
    duplicates = _PartFiles(keys.parent, "duplicates", len(bounds) + 1)
    try:
        for part in filter(None, key_parts):
            with _registered(connection, {"key_rows": _read(part)}):
                for table in _batches(connection, query, batch_rows):
                    duplicates.write(table, range_numbers(table[schema.CAPTION_ID], bounds))
    finally:
        found = duplicates.close()
    return found


def _check_unique_ids(connection: duckdb.DuckDBPyConnection) -> None:
    repeated = connection.execute(
        f"SELECT {schema.CAPTION_ID} FROM judged_rows GROUP BY 1 HAVING count(*) > 1 "
        "ORDER BY 1 LIMIT 1"
    ).fetchone()
    if repeated is not None:
        raise FilterInputError(f"caption_id must be unique; '{repeated[0]}' appears more than once")


_SORTED_RANGE = (
    f"SELECT judged_rows.*, duplicate_rows.{_DETAIL} AS {DUPLICATE_DETAIL} "
    f"FROM judged_rows LEFT JOIN duplicate_rows USING ({schema.CAPTION_ID}) "
    f"ORDER BY {schema.CAPTION_ID}"
)


def sorted_ranges(
    connection: duckdb.DuckDBPyConnection,
    judged: list[Path | None],
    duplicates: list[Path | None],
    batch_rows: int,
) -> Iterator[pa.RecordBatch]:
    """The judged rows, range after range, each range sorted by caption_id, with dedup's
    detail (``DUPLICATE_DETAIL``) where it rejects the row; FilterInputError at the first
    range with a repeated caption id (its smallest one: the shard's smallest)."""
    none = pa.table(
        {schema.CAPTION_ID: pa.array([], pa.string()), _DETAIL: pa.array([], pa.string())}
    )
    for rows, rejected in zip(judged, duplicates, strict=True):
        if rows is None:
            continue
        found = none if rejected is None else _read(rejected)
        with _registered(connection, {"judged_rows": _read(rows), "duplicate_rows": found}):
            _check_unique_ids(connection)
            yield from connection.execute(_SORTED_RANGE).to_arrow_reader(batch_rows)
