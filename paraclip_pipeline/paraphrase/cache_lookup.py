"""Cache lookups one key range at a time, so memory stays flat however big the shard.

A lookup splits the wanted keys into ranges of about ``BUCKET_KEYS`` by their first hex
digits (``key_ranges``) and runs one DuckDB query per range. Segments are sorted by key in
small row groups, so a range reads only its share of them (zone maps), and each query
joins, deduplicates (a window) and sorts one range, never the shard. The one query over
a 1M-row slice that this replaces needed DuckDB's 512 MB (stage 1 of a 1M-caption shard
peaked at 922 MB, against 450 MB at 100k), and failed at 64-128 MB: its window and sort
did not spill enough. At 96 MB a 65k-key range runs; a 262k-key one ran out.

For a shard (``ParaphraseCache.lookup_shard``), DuckDB hashes the texts into keys once
(``KEY_SQL``) and the keyed rows are split into one file per range on the way out, so no
range query rescans the whole shard's keys (16 rescans of a 1M-row slice cost about
2 s); each range's hits go to an Arrow IPC file sorted by row position, and
``merge_sorted`` puts them back in row order. IPC, not Parquet, between the two: nothing
to encode or decode for files read once (with Parquet the stage path of a 1M shard
against 10M answers took 9.2 s, with IPC 7.6 s on two threads). The range queries run on
one thread (``LOOKUP_THREADS`` says why).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from paraclip_pipeline.duckdb_connection import bounded_connection
from paraclip_pipeline.hex_ranges import range_bounds, range_count, range_numbers
from paraclip_pipeline.paraphrase.cache_files import (
    ANSWER,
    CACHE_SCHEMA,
    HIT_COLUMNS,
    HYGIENE_VERSION,
    INPUT_TEXT,
    KEY,
    SEGMENT_ROW_GROUP,
)
from paraclip_pipeline.paraphrase.sorted_merge import merge_sorted
from paraclip_pipeline.storage import rebatched

# One query's wanted keys: DuckDB's memory for it is far below the limit, whatever the
# shard's size.
BUCKET_KEYS = 1 << 16
LOOKUP_MEMORY_LIMIT = "96MB"
# A range query on one thread: DuckDB's Parquet scan is what holds memory in a lookup, and
# held about 30 MB more on two (a 1M-row slice of new texts against a 2M-answer cache: the
# range queries' high-water mark 111 against 140 MB over the process's start), for about
# 0.1 s more a query (1.4 s a 1M shard against 10M answers).
LOOKUP_THREADS = 1
# Hashing a slice's texts into keys (sha256 in DuckDB) keeps two threads: with it on one as
# well, the stage path of a 1M shard against 10M answers took 9.8-10.4 s against 8.9-9.1 s
# (runs minutes apart), and the keyed split's high-water mark was 99 against 106 MB.
KEY_THREADS = 2
# A shard lookup's output columns (``lookup_shard``).
POSITION = "row_position"
LAST_POSITION = "last_row_position"
FOUND = "cached"
STALE_ANSWER = "stale_answer"
# ``ParaphraseCache.key`` of ``input_text`` in DuckDB, for the ``$namespace`` parameter.
KEY_SQL = f"sha256($namespace || chr(0) || {INPUT_TEXT})"
# Of a key's rows, the one every reader takes: the smallest raw answer.
FIRST_OF_EACH_KEY = (
    f"QUALIFY row_number() OVER (PARTITION BY cache.{KEY} "
    f"ORDER BY cache.{ANSWER}, cache.{HYGIENE_VERSION}) = 1"
)
# Rows per record batch of a range's hit file; the merge holds about two per range.
MERGE_READ_ROWS = 4096
_HITS = ", ".join(f"cache.{name}" for name in HIT_COLUMNS)
RANGE_HITS_SQL = f"""
    WITH keyed AS (SELECT {POSITION}, {KEY} FROM read_parquet($keyed)),
    last AS (SELECT {KEY}, max({POSITION}) AS {LAST_POSITION} FROM keyed GROUP BY {KEY}),
    found AS (SELECT cache.{KEY}, {_HITS},
                     CASE WHEN cache.{HYGIENE_VERSION} <> $version
                          THEN cache.{ANSWER} END AS {STALE_ANSWER}
              FROM $source AS cache SEMI JOIN last USING ({KEY})
              WHERE cache.{KEY} >= $low AND cache.{KEY} < $high {FIRST_OF_EACH_KEY})
    SELECT keyed.{POSITION}, keyed.{KEY}, found.{KEY} IS NOT NULL AS {FOUND},
           {_HITS.replace("cache.", "found.")}, found.{STALE_ANSWER}, last.{LAST_POSITION}
    FROM keyed JOIN last USING ({KEY}) LEFT JOIN found USING ({KEY})
    ORDER BY keyed.{POSITION}
"""


def key_ranges(wanted: int) -> list[tuple[str, str]]:
    """(low, high) key bounds, high exclusive, that split ``wanted`` keys (uniform hashes)
    into ranges of about ``BUCKET_KEYS``: a power of two of them, on the first three hex
    digits ("" and "~" bound every hex key)."""
    bounds = range_bounds(range_count(wanted, BUCKET_KEYS))
    return list(zip(["", *bounds], [*bounds, "~"], strict=True))


def in_range(keys: pa.Array, low: str, high: str) -> pa.Array:
    return keys.filter(pc.and_(pc.greater_equal(keys, low), pc.less(keys, high)))


@contextlib.contextmanager
def bounded_duckdb(threads: int = LOOKUP_THREADS) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB at ``LOOKUP_MEMORY_LIMIT`` on ``threads`` threads, spilling to a private
    temporary directory removed afterwards."""
    with (
        tempfile.TemporaryDirectory(prefix="paraclip-cache-") as spill,
        bounded_connection(LOOKUP_MEMORY_LIMIT, threads, Path(spill)) as connection,
    ):
        yield connection


def write_keyed_ranges(
    connection: duckdb.DuckDBPyConnection,
    positions: Path,
    rows: tuple[int, int],
    namespace: str,
    scratch: Path,
) -> list[tuple[Path, tuple[str, str]]]:
    """Each wanted row of ``positions`` in ``rows`` with its key, split by key range: one
    (file, range) per range of ``key_ranges``."""
    parameters: dict[str, object] = {"positions": str(positions), "first": rows[0], "end": rows[1]}
    where = f"FROM read_parquet($positions) WHERE {POSITION} >= $first AND {POSITION} < $end"
    counted = connection.execute(f"SELECT count(*) {where}", parameters).fetchone()
    ranges = key_ranges(counted[0] if counted else 0)
    bounds = [low for low, _ in ranges[1:]]
    reader = connection.execute(
        f"SELECT {POSITION}, {KEY_SQL} AS {KEY} {where}", parameters | {"namespace": namespace}
    ).to_arrow_reader(SEGMENT_ROW_GROUP)
    paths = [scratch / f"keyed-{number}.parquet" for number in range(len(ranges))]
    with contextlib.ExitStack() as stack:
        writers = [
            stack.enter_context(pq.ParquetWriter(path, reader.schema, use_dictionary=False))
            for path in paths
        ]
        for batch in reader:
            numbers = range_numbers(batch.column(KEY), bounds)
            for number in np.unique(numbers):
                writers[number].write_batch(batch.filter(pa.array(numbers == number)))
    return list(zip(paths, ranges, strict=True))


def write_range_hits(
    connection: duckdb.DuckDBPyConnection,
    files: list[str],
    keyed: Path,
    key_range: tuple[str, str],
    version: str,
) -> Path:
    """One range's rows with what the cache ``files`` hold for them, sorted by position
    (``ParaphraseCache.lookup_shard`` says which columns)."""
    parameters: dict[str, object] = {
        "keyed": str(keyed),
        "low": key_range[0],
        "high": key_range[1],
        "version": version,
    }
    if files:
        source, parameters["files"] = "read_parquet($files, union_by_name = true)", files
    else:
        connection.register("empty_cache", CACHE_SCHEMA.empty_table())
        source = "empty_cache"
    reader = connection.execute(RANGE_HITS_SQL.replace("$source", source), parameters)
    batches = reader.to_arrow_reader(MERGE_READ_ROWS)
    target = keyed.with_name(keyed.name.replace("keyed-", "hits-")).with_suffix(".arrow")
    with pa.ipc.new_file(str(target), batches.schema) as writer:
        for batch in batches:
            writer.write_batch(batch)  # one record batch each: the merge reads it alone
    return target


def _tables(path: Path) -> Iterator[pa.Table]:
    """A range file's batches, each read alone (not memory-mapped: the pages of a mapped
    file count in the resident set until it is closed, and the merge holds all 16 open)."""
    with pa.OSFile(str(path)) as source:
        reader = pa.ipc.open_file(source)
        for number in range(reader.num_record_batches):
            yield pa.Table.from_batches([reader.get_batch(number)])


def merge_by_position(paths: Sequence[Path], target: Path) -> None:
    """The range files' rows, each file sorted by position, into ``target`` in row order,
    in whole ``SEGMENT_ROW_GROUP`` row groups (the merge hands out a few thousand rows a
    step: a row group per step cost a second per 1M rows)."""
    with pa.OSFile(str(paths[0])) as source:
        schema = pa.ipc.open_file(source).schema
    merged = merge_sorted([_tables(path) for path in paths], [(POSITION, "ascending")])
    with pq.ParquetWriter(target, schema) as writer:
        for batch in rebatched(
            (batch for table in merged for batch in table.to_batches()), SEGMENT_ROW_GROUP
        ):
            writer.write_batch(batch)
