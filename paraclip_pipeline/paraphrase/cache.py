"""Content-addressed, crash-safe cache of raw backend answers.

Layout: ``<cache_dir>/<namespace>/identity.json`` plus ``chunk-<digest>.parquet``
files. The namespace is a hash of everything but the input text (backend, model,
template, sampling parameters), so answers from different settings never mix; the key
of one answer is a hash of the namespace and the input text. Each committed chunk is
one Parquet file written atomically (temp file + rename), so a kill loses at most the
chunk in flight, concurrent shard runs in separate processes never contend for a lock
(as a single DuckDB file would), and DuckDB can still query the cache with
``read_parquet('<namespace>/*.parquet')``. Each row keeps the raw answer next to its
cleaned paraphrase and status, stamped with the hygiene version that produced them;
the engine re-cleans rows from an older version, so a hygiene fix needs no new calls.

At scale (10M answers would be 150k chunks of 64) the cache compacts itself rather than
keeping a key-prefix index: a lookup of a whole shard (1M keys) touches every key
prefix anyway, so an index by prefix saves no reading for the bulk lookups the engine
makes, while thousands of small files cost an open, a footer parse and a tiny row group
each. Once ``COMPACT_AT_CHUNKS`` chunk files have accumulated, the next lookup merges
them with DuckDB (which spills to disk, so memory stays bounded) into one
``segment-<digest>.parquet`` sorted by key in large row groups, renamed into place
before the merged chunks are deleted; when more than ``MAX_SEGMENTS`` segments exist,
the ``MERGE_FANIN`` smallest are merged the same way (size tiers, so each answer is
rewritten O(log n) times). Readers and writers never lock: a reader that finds a file
gone re-lists (the rows are in the new segment), and two processes compacting the same
files write the same segment (same name, same bytes). An answer cached twice (two
processes paraphrasing the same text at once) is resolved the same way everywhere:
the row with the smallest raw answer wins.

A lookup is a DuckDB semi join of the files against the wanted keys (an Arrow table,
deduplicated with ``pc.unique``): DuckDB reads the key column, probes the join and
reads the columns a hit needs, in parallel, spilling past ``LOOKUP_MEMORY_LIMIT``; the
raw answer orders a duplicated key's rows (the smallest wins).
``bench_paraphrase_cache.py``, 1M keys (500k hits) against 10M answers in one segment,
2-core box at load 5-7: 7.0 s (goal < 10 s); the pyarrow dataset scan with an ``isin``
filter it replaces took 13.2 s there at low load and 20.3 s in this session at load 7
(its parts, timed alone: scan 5.4 s, of which 1.8 s reading the raw answers, a Python
sort of the keys 1.2 s). A lookup costs about one scan of the key column whatever the
number of keys (65k keys: 2.6-3.7 s against 10M answers), so looking a shard up batch by
batch (``storage.batch_rows`` = 65,536) cost one scan per batch: 16 for 1M captions,
about 41-59 s. The stage therefore looks a whole shard up once (``lookup_shard``; a shard
over ``shard_lookup.LOOKUP_SLICE_ROWS`` = 1,048,576 rows, once per slice): the shard's
texts (a Parquet file the engine streams out) are hashed into keys by DuckDB
(``KEY_SQL``), joined against the files, and every row's key and hit streamed to a
Parquet file sorted by row position, which the engine then reads batch by batch
(``paraphrase/shard_lookup.py``). Same benchmark, the whole 1M-caption shard through the
stage's path (both passes over the shard, the lookup, the 16 batches answered from the
hit file; misses left unanswered): 9.5 s at load 3 (another test suite on the same 2
cores; the plain 1M-key ``lookup`` took 7.2 s and a 65k-key one 2.6 s in that run),
against 41-59 s per batch. Its peak RSS above the benchmark's own input: +400 MB for 1M
rows and for 2M (two slices), DuckDB's 512 MB limit being most of it; 4M rows: 35 s."""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TypeVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from paraclip_pipeline.paraphrase.errors import CacheCorruptError
from paraclip_pipeline.storage import atomic_path, write_parquet_atomic, write_text_atomic

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
IDENTITY_FILE = "identity.json"
CHUNK_GLOB = "chunk-*.parquet"
SEGMENT_GLOB = "segment-*.parquet"
COMPACT_AT_CHUNKS = 256
MAX_SEGMENTS = 16
MERGE_FANIN = 8
SEGMENT_ROW_GROUP = 128 * 1024
READ_ATTEMPTS = 5  # re-list when a concurrent compaction removed a file being read
# DuckDB spills past these: a compaction's sort fits 256 MB; a lookup's join of 1M wanted
# keys and its window over 500k hits do not (1M keys vs 10M answers ran out of 256 MB).
LOOKUP_MEMORY_LIMIT = "512MB"
# A shard lookup's output columns (``lookup_shard``).
POSITION = "row_position"
LAST_POSITION = "last_row_position"
FOUND = "cached"
STALE_ANSWER = "stale_answer"
# ``ParaphraseCache.key`` of ``input_text`` in DuckDB, for the ``$namespace`` parameter.
KEY_SQL = f"sha256($namespace || chr(0) || {INPUT_TEXT})"
# Of a key's rows, the one every reader takes: the smallest raw answer.
FIRST_OF_EACH_KEY = (
    f"QUALIFY row_number() OVER (PARTITION BY cache.{KEY} ORDER BY cache.{ANSWER}) = 1"
)
COMPACTION_MEMORY_LIMIT = "256MB"
T = TypeVar("T")


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


def _digest(payload: str) -> str:
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _first_of_each_key(rows: pa.Table, previous_key: str | None) -> pa.Table:
    """The first row of each key of ``rows`` (sorted by key, then raw answer: the smallest
    answer wins), leaving out a key equal to ``previous_key``, the last of the batch before.
    """
    if rows.num_rows == 0:
        return rows
    keys = rows.column(KEY).combine_chunks()
    before = pa.concat_arrays([pa.array([previous_key], pa.string()), keys[:-1]])
    return rows.filter(pc.fill_null(pc.not_equal(keys, before), True))


@contextlib.contextmanager
def _bounded_duckdb(memory_limit: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB that spills to a private temporary directory past
    ``memory_limit`` (DuckDB's default is 80 % of RAM: the compaction of 2M answers
    inside stage 1 of a 5M-caption shard took the process to 3 GB)."""
    with (
        tempfile.TemporaryDirectory(prefix="paraclip-cache-") as spill,
        duckdb.connect(
            config={
                "memory_limit": memory_limit,
                "temp_directory": spill,
                "preserve_insertion_order": False,
            }
        ) as connection,
    ):
        connection.execute("SET enable_progress_bar = false")
        yield connection


class ParaphraseCache:
    """The answers of one backend configuration (one namespace)."""

    def __init__(self, cache_dir: Path, identity: Mapping[str, object]) -> None:
        canonical = json.dumps(identity, sort_keys=True, ensure_ascii=False)
        self.namespace = _digest(canonical)[:32]
        self.directory = Path(cache_dir) / self.namespace
        self._identity_json = json.dumps(identity, sort_keys=True, indent=2, ensure_ascii=False)

    def key(self, text: str) -> str:
        """The key of ``text``'s answer (``KEY_SQL`` is the same digest, in DuckDB)."""
        return _digest(f"{self.namespace}\x00{text}")

    def chunk_files(self) -> list[Path]:
        return sorted(self.directory.glob(CHUNK_GLOB))

    def segment_files(self) -> list[Path]:
        return sorted(self.directory.glob(SEGMENT_GLOB))

    def _query(self, run: Callable[[duckdb.DuckDBPyConnection, list[str]], T]) -> T | None:
        """``run(connection, files)`` over the cache's files: the one place that reads them.

        Compacts first when loose chunks have piled up; re-lists when a concurrent
        compaction removed a file being read. None when the cache is empty.
        """
        if len(self.chunk_files()) >= COMPACT_AT_CHUNKS:
            self.compact()
        attempts = 0
        while files := self.segment_files() + self.chunk_files():
            try:
                with _bounded_duckdb(LOOKUP_MEMORY_LIMIT) as connection:
                    return run(connection, [str(path) for path in files])
            except duckdb.IOException:
                attempts += 1
                if attempts == READ_ATTEMPTS or all(path.exists() for path in files):
                    raise  # not a file removed by a concurrent compaction: re-listing won't help
            except duckdb.InvalidInputException as exc:
                raise CacheCorruptError(
                    f"cannot read paraphrase cache in {self.directory}: {exc}"
                ) from exc
        return None

    def _read(self, keys: Iterable[str], columns: list[str]) -> pa.Table | None:
        """One row per cached key among ``keys`` (duplicates: the smallest raw answer).

        A DuckDB semi join of the files against the wanted keys; see the module docstring.
        """
        wanted = pc.unique(pa.array(keys if isinstance(keys, list) else list(keys), pa.string()))
        if len(wanted) == 0:
            return None
        selected = ", ".join(f"cache.{name}" for name in dict.fromkeys([KEY, *columns]))
        query = (
            f"SELECT {selected} FROM read_parquet($files, union_by_name = true) AS cache "
            f"SEMI JOIN wanted USING ({KEY}) {FIRST_OF_EACH_KEY}"
        )

        def run(connection: duckdb.DuckDBPyConnection, files: list[str]) -> pa.Table:
            connection.register("wanted", pa.table({KEY: wanted}))
            return connection.execute(query, {"files": files}).to_arrow_table()

        return self._query(run)

    def lookup_shard(
        self, positions: Path, rows: tuple[int, int], target: Path, version: str
    ) -> None:
        """Look shard rows ``rows`` (first, end) up in one pass, writing what was found by
        row position.

        ``positions``: a Parquet file of (``POSITION``, ``INPUT_TEXT``), one row per shard
        row that needs an answer; DuckDB computes the keys (``KEY_SQL``, in parallel: the
        same digest as ``key``). ``target`` gets each of those rows in ``rows``, sorted by
        position: its key, whether it is cached (``FOUND``), the ``CacheHit`` columns, the
        raw answer in ``STALE_ANSWER`` when it was cleaned under a hygiene version other
        than ``version``, and the key's last row in ``rows`` (``LAST_POSITION``), so a
        reader streaming them keeps an answer it makes only as long as a later row needs it.
        """
        # A key's last row by aggregate (a window over 2M rows ran out of 512 MB), its hit
        # as ``_read`` finds it; the sorted rows stream out to a Parquet writer (DuckDB's
        # ordered COPY ran out of 512 MB on 1M rows, and an arg_min of the hit's columns on
        # a 1M-row slice of 2M).
        hits = ", ".join(f"cache.{name}" for name in HIT_COLUMNS)
        query = f"""
            WITH keyed AS (SELECT {POSITION}, {KEY_SQL} AS {KEY} FROM read_parquet($positions)
                           WHERE {POSITION} >= $first AND {POSITION} < $end),
            last AS (SELECT {KEY}, max({POSITION}) AS {LAST_POSITION} FROM keyed GROUP BY {KEY}),
            found AS (SELECT cache.{KEY}, {hits},
                             CASE WHEN cache.{HYGIENE_VERSION} <> $version
                                  THEN cache.{ANSWER} END AS {STALE_ANSWER}
                      FROM $source AS cache SEMI JOIN last USING ({KEY}) {FIRST_OF_EACH_KEY})
            SELECT keyed.{POSITION}, keyed.{KEY}, found.{KEY} IS NOT NULL AS {FOUND},
                   {hits.replace("cache.", "found.")}, found.{STALE_ANSWER}, last.{LAST_POSITION}
            FROM keyed JOIN last USING ({KEY}) LEFT JOIN found USING ({KEY})
            ORDER BY keyed.{POSITION}
        """
        source = "read_parquet($files, union_by_name = true)"

        def run(connection: duckdb.DuckDBPyConnection, files: list[str]) -> bool:
            parameters: dict[str, object] = {
                "positions": str(positions),
                "first": rows[0],
                "end": rows[1],
                "version": version,
                "namespace": self.namespace,
            }
            if files:
                parameters["files"] = files
            else:
                connection.register("empty_cache", CACHE_SCHEMA.empty_table())
            found = connection.execute(
                query.replace("$source", source if files else "empty_cache"), parameters
            ).to_arrow_reader(SEGMENT_ROW_GROUP)
            with pq.ParquetWriter(target, found.schema) as writer:
                for batch in found:
                    writer.write_batch(batch)
            return True

        if self._query(run) is None:  # an empty cache: nothing found, the keys still written
            with _bounded_duckdb(LOOKUP_MEMORY_LIMIT) as connection:
                run(connection, [])

    def compact(self, min_chunks: int | None = None) -> None:
        """Merge the loose chunk files into a segment, then over-many segments; see above."""
        chunks = self.chunk_files()
        if chunks and len(chunks) >= (COMPACT_AT_CHUNKS if min_chunks is None else min_chunks):
            self._merge(chunks)
        while len(segments := self.segment_files()) > MAX_SEGMENTS:
            smallest = sorted(segments, key=lambda path: path.stat().st_size)[:MERGE_FANIN]
            if self._merge(smallest) is None:
                return

    def _merge(self, files: Sequence[Path]) -> Path | None:
        names = "\n".join(sorted(path.name for path in files))
        target = self.directory / f"segment-{_digest(names)[:32]}.parquet"
        columns = ", ".join(CACHE_SCHEMA.names)
        try:
            with (
                atomic_path(target) as temporary,
                _bounded_duckdb(COMPACTION_MEMORY_LIMIT) as connection,
                pq.ParquetWriter(temporary, CACHE_SCHEMA) as writer,
            ):
                # A sort spills; DuckDB's window (QUALIFY row_number()) ran out of 512 MB
                # on 2M answers, so each key's first row is kept here, batch by batch.
                ordered = connection.read_parquet([str(path) for path in files]).query(
                    "answers", f"SELECT {columns} FROM answers ORDER BY {KEY}, {ANSWER}"
                )
                last_key: str | None = None
                for batch in ordered.fetch_record_batch(SEGMENT_ROW_GROUP):
                    table = pa.Table.from_batches([batch])
                    writer.write_table(_first_of_each_key(table, last_key).cast(CACHE_SCHEMA))
                    last_key = table.column(KEY)[-1].as_py()
        except duckdb.IOException:
            if all(path.exists() for path in files):
                raise
            return None  # a concurrent compaction took some of these files: it merged them
        for path in files:
            path.unlink(missing_ok=True)
        return target

    def lookup(self, keys: Iterable[str]) -> dict[str, CacheHit]:
        """The cached answers among ``keys``; keys never answered are absent."""
        found = self._read(keys, HIT_COLUMNS)
        if found is None:
            return {}
        values = [found.column(name).to_pylist() for name in HIT_COLUMNS]
        return {
            key: CacheHit(*row)
            for key, row in zip(
                found.column(KEY).to_pylist(), zip(*values, strict=True), strict=True
            )
        }

    def raw_answers(self, keys: Iterable[str]) -> dict[str, str]:
        """The raw backend answers of ``keys``, for re-cleaning under new hygiene rules."""
        found = self._read(keys, [ANSWER])
        if found is None:
            return {}
        return dict(
            zip(found.column(KEY).to_pylist(), found.column(ANSWER).to_pylist(), strict=True)
        )

    def commit(self, answers: Mapping[str, CachedAnswer]) -> Path | None:
        """Write one chunk of final answers durably; the file name is a hash of its keys."""
        if not answers:
            return None
        if not (self.directory / IDENTITY_FILE).exists():
            write_text_atomic(self._identity_json, self.directory / IDENTITY_FILE)
        keys: Sequence[str] = sorted(answers)
        columns: dict[str, list[object]] = {KEY: list(keys)}
        for field in fields(CachedAnswer):
            columns[field.name] = [getattr(answers[key], field.name) for key in keys]
        table = pa.table(columns, schema=CACHE_SCHEMA)  # matched to the schema by name
        target = self.directory / f"chunk-{_digest(chr(10).join(keys))[:32]}.parquet"
        return write_parquet_atomic(table, target)
