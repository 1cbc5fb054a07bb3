"""The paraphrase cache's files: their schema, and merging sorted ones into a segment.

Every chunk is written sorted by key (``ParaphraseCache.commit``) and every segment is
written sorted by key, so compaction is a streaming k-way merge (``sorted_merge``), not a
sort: it holds a row group per segment and the (bounded) loose chunks. DuckDB's sort did
this before; it needed 256 MB, and took stage 1 of a 5M-caption shard to 3 GB unbounded.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from paraclip_pipeline.paraphrase.sorted_merge import merge_sorted
from paraclip_pipeline.storage import ParquetTable

KEY = "key"
INPUT_TEXT = "input_text"
ANSWER = "answer"
PARAPHRASE = "paraphrase"
STATUS = "status"
HYGIENE_VERSION = "hygiene_version"
PROMPT_TOKENS = "prompt_tokens"
COMPLETION_TOKENS = "completion_tokens"

CACHE_SCHEMA = pa.schema(
    [
        pa.field(KEY, pa.string(), nullable=False),
        pa.field(INPUT_TEXT, pa.string(), nullable=False),
        pa.field(ANSWER, pa.string(), nullable=False),
        pa.field(PARAPHRASE, pa.string()),
        pa.field(STATUS, pa.string(), nullable=False),
        pa.field(HYGIENE_VERSION, pa.string(), nullable=False),
        pa.field(PROMPT_TOKENS, pa.int64(), nullable=False),
        pa.field(COMPLETION_TOKENS, pa.int64(), nullable=False),
    ]
)


@dataclass(frozen=True)
class CacheHit:
    """What a rerun needs of a cached answer (the raw texts stay on disk unless needed)."""

    paraphrase: str | None  # after hygiene
    status: str
    hygiene_version: str
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class CachedAnswer(CacheHit):
    """One cache row as written: the hit plus the raw input and answer."""

    input_text: str
    answer: str  # raw, as the backend gave it


HIT_COLUMNS = [field.name for field in fields(CacheHit)]

# Small enough that a range of a lookup reads little more than its keys' share of a
# segment, and a merge's segment inputs hold a few MB each.
SEGMENT_ROW_GROUP = 8 * 1024
# Rows a merge takes from each segment at a time: it holds a few batches per input (its
# buffer, the rows it sorts, the rows it keeps). 16,384 took a merge of 8 segments to
# 194 MB of Arrow memory; 4,096 to 96 MB (bench: 250 chunks of 8,192 answers); see
# ``cache.MERGE_FANIN`` for the settings kept.
SEGMENT_READ_ROWS = 2048
MERGE_ORDER = [(KEY, "ascending"), (ANSWER, "ascending"), (HYGIENE_VERSION, "ascending")]


def first_of_each_key(rows: pa.Table, previous_key: str | None) -> pa.Table:
    """The first row of each key of ``rows`` (in ``MERGE_ORDER``: the smallest answer
    wins), leaving out a key equal to ``previous_key``, the last of the table before."""
    if rows.num_rows == 0:
        return rows
    keys = rows.column(KEY).combine_chunks()
    before = pa.concat_arrays([pa.array([previous_key], pa.string()), keys[:-1]])
    return rows.filter(pc.fill_null(pc.not_equal(keys, before), True))


def sorted_answers(path: Path) -> Iterator[pa.Table]:
    """A cache file's rows in key order: a segment (written sorted) row group by row
    group; a chunk (at most a commit's answers) read whole and sorted."""
    if path.name.startswith("segment-"):
        for batch in ParquetTable(str(path)).batches(SEGMENT_READ_ROWS, CACHE_SCHEMA.names):
            yield pa.Table.from_batches([batch]).cast(CACHE_SCHEMA)
    else:
        chunk = pq.read_table(path, columns=CACHE_SCHEMA.names).cast(CACHE_SCHEMA)
        yield chunk.sort_by(MERGE_ORDER)


def write_segment(files: Sequence[Path], target: Path) -> None:
    """Merge the answer ``files`` into ``target`` (sorted by key, one row per key: the
    smallest raw answer), in whole ``SEGMENT_ROW_GROUP`` row groups so that two
    processes merging the same files write the same bytes. A file that vanished raises
    ``FileNotFoundError``."""
    with pq.ParquetWriter(target, CACHE_SCHEMA) as writer:
        # Each key's rows leave the merge in one table, so its first row is kept table
        # by table; the output is re-cut into whole row groups.
        pending, last_key = CACHE_SCHEMA.empty_table(), None
        for table in merge_sorted([sorted_answers(path) for path in files], MERGE_ORDER):
            pending = pa.concat_tables([pending, first_of_each_key(table, last_key)])
            last_key = table.column(KEY)[-1].as_py()
            while pending.num_rows >= SEGMENT_ROW_GROUP:
                writer.write_table(pending.slice(0, SEGMENT_ROW_GROUP))
                pending = pending.slice(SEGMENT_ROW_GROUP)
        writer.write_table(pending)
