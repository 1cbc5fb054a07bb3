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
each. Once ``COMPACT_AT_CHUNKS`` chunk files or ``COMPACT_AT_BYTES`` of them have
accumulated, the next lookup merges them, at most that many at a time (a merge reads its
chunks whole), into ``segment-<digest>.parquet`` files sorted by key, each renamed into
place before its merged chunks are deleted; when more than
``MAX_SEGMENTS`` segments exist, the ``MERGE_FANIN`` smallest are merged the same way
(size tiers, so each answer is rewritten O(log n) times). Chunks are written sorted by
key and segments are sorted, so a merge is a streaming k-way merge (``sorted_merge``)
holding a batch per input, not a sort. Readers and writers never lock: a reader that
finds a file gone re-lists (the rows are in the new segment), and two processes
compacting the same files write the same segment (same name, same bytes). An answer
cached twice (two processes paraphrasing the same text at once) is resolved the same
way everywhere: the row with the smallest raw answer wins.

A lookup is a DuckDB semi join of the files against the wanted keys, one key range at a
time, so its memory is flat whatever the shard's size (``cache_lookup``)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import TypeVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from paraclip_pipeline.paraphrase.cache_files import (
    ANSWER,
    CACHE_SCHEMA,
    HIT_COLUMNS,
    KEY,
    CachedAnswer,
    CacheHit,
    write_segment,
)
from paraclip_pipeline.paraphrase.cache_lookup import (
    FIRST_OF_EACH_KEY,
    KEY_THREADS,
    bounded_duckdb,
    in_range,
    key_ranges,
    merge_by_position,
    write_keyed_ranges,
    write_range_hits,
)
from paraclip_pipeline.paraphrase.errors import CacheCorruptError
from paraclip_pipeline.storage import (
    atomic_path,
    write_parquet_atomic,
    write_text_atomic,
)

IDENTITY_FILE = "identity.json"
CHUNK_GLOB = "chunk-*.parquet"
SEGMENT_GLOB = "segment-*.parquet"
COMPACT_AT_CHUNKS = 256
# Loose chunks are read by every range of a lookup: compact once they hold 8 MiB.
COMPACT_AT_BYTES = 8 << 20
# A merge reads its loose chunks whole, so it takes at most this many of their rows (about
# 5 MB in memory). Bounding the group by file bytes instead let 8 MiB of well-compressed
# chunks hold 410k answers: 507 MB of Arrow memory, stage 1 of a 3M-caption shard 740 MB.
COMPACT_GROUP_ROWS = 1 << 14
MAX_SEGMENTS = 16
# Segments merged at once; each holds a row group being read. Compacting 1M answers (122
# chunks of 8,192) into a cache of 1-4M, Arrow's peak: fan-in 8, 16,384-row groups and
# groups of 65,536 chunk rows 104-110 MB; fan-in 4, 8,192-row groups, 16,384 rows 30 MB
# (each round 6 -> 8 s).
MERGE_FANIN = 4
READ_ATTEMPTS = 5  # re-list when a concurrent compaction removed a file being read
T = TypeVar("T")


def _digest(payload: str) -> str:
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


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

    def _should_compact(self) -> bool:
        chunks = self.chunk_files()
        if len(chunks) >= COMPACT_AT_CHUNKS:
            return True
        loose_bytes = 0
        for path in chunks:
            with contextlib.suppress(FileNotFoundError):  # merged by another process
                loose_bytes += path.stat().st_size
        return len(chunks) > 1 and loose_bytes >= COMPACT_AT_BYTES

    def _query(self, run: Callable[[duckdb.DuckDBPyConnection, list[str]], T]) -> T | None:
        """``run(connection, files)`` over the cache's files: the one place that reads them.

        Compacts first when loose chunks have piled up; re-lists when a concurrent
        compaction removed a file being read. None when the cache is empty.
        """
        if self._should_compact():
            self.compact(min_chunks=1)
        attempts = 0
        while files := self.segment_files() + self.chunk_files():
            try:
                with bounded_duckdb() as connection:
                    return run(connection, [str(path) for path in files])
            except duckdb.IOException:
                attempts += 1
                if attempts == READ_ATTEMPTS or all(path.exists() for path in files):
                    raise  # not a file removed by a concurrent compaction: re-listing won't help
            except duckdb.InvalidInputException as exc:
                raise self._corrupt(exc) from exc
        return None

    def _corrupt(self, exc: Exception) -> CacheCorruptError:
        """A lookup (DuckDB) or a compaction (pyarrow) met a file that is not a cache file."""
        return CacheCorruptError(f"cannot read paraphrase cache in {self.directory}: {exc}")

    def _read(self, keys: Iterable[str], columns: list[str]) -> pa.Table | None:
        """One row per cached key among ``keys`` (duplicates: the smallest raw answer).

        A DuckDB semi join of the files against the wanted keys, a key range at a time;
        see the module docstring.
        """
        wanted = pc.unique(pa.array(keys if isinstance(keys, list) else list(keys), pa.string()))
        if len(wanted) == 0:
            return None
        selected = ", ".join(f"cache.{name}" for name in dict.fromkeys([KEY, *columns]))
        query = (
            f"SELECT {selected} FROM read_parquet($files, union_by_name = true) AS cache "
            f"SEMI JOIN wanted USING ({KEY}) "
            f"WHERE cache.{KEY} >= $low AND cache.{KEY} < $high {FIRST_OF_EACH_KEY}"
        )

        def run(connection: duckdb.DuckDBPyConnection, files: list[str]) -> pa.Table:
            found = []
            for low, high in key_ranges(len(wanted)):
                connection.register("wanted", pa.table({KEY: in_range(wanted, low, high)}))
                parameters = {"files": files, "low": low, "high": high}
                found.append(connection.execute(query, parameters).to_arrow_table())
            return pa.concat_tables(found)

        return self._query(run)

    def lookup_shard(
        self, positions: Path, rows: tuple[int, int], target: Path, version: str
    ) -> None:
        """Look shard rows ``rows`` (first, end) up, writing what was found by row position.

        ``positions``: a Parquet file of (``POSITION``, ``INPUT_TEXT``), one row per shard
        row that needs an answer; DuckDB computes the keys once (``KEY_SQL``: the same
        digest as ``key``). ``target`` gets each of those rows in ``rows``, sorted by
        position: its key, whether it is cached (``FOUND``), the ``CacheHit`` columns, the
        raw answer in ``STALE_ANSWER`` when it was cleaned under a hygiene version other
        than ``version``, and the key's last row in ``rows`` (``LAST_POSITION``), so a
        reader streaming them keeps an answer it makes only as long as a later row needs it.
        Each key range is one query (its rows sorted by position, written to a file in a
        scratch directory beside ``target``); ``merge_sorted`` puts them in row order.
        """
        with tempfile.TemporaryDirectory(prefix="lookup-", dir=target.parent) as scratch:
            with bounded_duckdb(KEY_THREADS) as connection:
                keyed = write_keyed_ranges(
                    connection, positions, rows, self.namespace, Path(scratch)
                )

            def run(connection: duckdb.DuckDBPyConnection, files: list[str]) -> list[Path]:
                return [
                    write_range_hits(connection, files, part, ranges, version)
                    for part, ranges in keyed
                ]

            found = self._query(run)
            if found is None:  # an empty cache: nothing found, the keys still written
                with bounded_duckdb() as connection:
                    found = run(connection, [])
            merge_by_position(found, target)

    def compact(self, min_chunks: int | None = None) -> None:
        """Merge the loose chunk files into segments, then over-many segments; see above.

        A merge reads its chunks whole, so they go in groups of at most
        ``COMPACT_AT_CHUNKS`` files and ``COMPACT_GROUP_ROWS`` rows (counted in their
        footers; a stage with 64-answer chunks leaves 15k of them per 1M captions between
        two lookups)."""
        chunks = self.chunk_files()
        if chunks and len(chunks) >= (COMPACT_AT_CHUNKS if min_chunks is None else min_chunks):
            group: list[Path] = []
            group_rows = 0
            for path in chunks:
                try:
                    rows = pq.read_metadata(path).num_rows
                except FileNotFoundError:  # merged by another process
                    continue
                except pa.ArrowException as exc:
                    raise self._corrupt(exc) from exc
                if group and (
                    len(group) == COMPACT_AT_CHUNKS or group_rows + rows > COMPACT_GROUP_ROWS
                ):
                    self._merge(group)
                    group, group_rows = [], 0
                group.append(path)
                group_rows += rows
            if group:
                self._merge(group)
        while len(segments := self.segment_files()) > MAX_SEGMENTS:
            smallest = sorted(segments, key=lambda path: path.stat().st_size)[:MERGE_FANIN]
            if self._merge(smallest) is None:
                break
        # Hand the merges' freed pages back before the lookup that follows allocates its own:
        # in stage 1 of a 5M-caption shard the peak came right after each compaction.
        pa.default_memory_pool().release_unused()

    def _merge(self, files: Sequence[Path]) -> Path | None:
        names = "\n".join(sorted(path.name for path in files))
        target = self.directory / f"segment-{_digest(names)[:32]}.parquet"
        try:
            with atomic_path(target) as temporary:
                write_segment(files, temporary)
        except FileNotFoundError:
            if all(path.exists() for path in files):
                raise
            return None  # a concurrent compaction took some of these files: it merged them
        except pa.ArrowException as exc:  # the temporary is gone, every input kept
            raise self._corrupt(exc) from exc
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
