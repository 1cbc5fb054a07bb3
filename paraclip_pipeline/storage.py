"""Storage root layout and atomic file writes.

Everything the pipeline produces lives under one root (``PARACLIP_STORAGE_ROOT``,
default ``./storage``) so a user can delete, back up or mount it as a unit.
Writes go to a temporary sibling and are renamed into place, so a kill in the
middle of a write never leaves a half-written file that looks finished.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

STORAGE_ROOT_ENV = "PARACLIP_STORAGE_ROOT"
DEFAULT_STORAGE_ROOT = "storage"


@dataclass(frozen=True)
class StorageLayout:
    """Where each kind of output lives under the storage root."""

    root: Path

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster_home"

    def asset_dir(self, asset_name: str) -> Path:
        return self.root / "assets" / asset_name

    def partition_file(self, asset_name: str, partition_key: str, suffix: str = ".parquet") -> Path:
        return self.asset_dir(asset_name) / f"{partition_key}{suffix}"

    @property
    def paraphrase_cache_dir(self) -> Path:
        return self.root / "cache" / "paraphrase"

    @property
    def scratch_dir(self) -> Path:
        """Spill files of streaming stages (DuckDB sorts, dedup keys); deleted after use."""
        return self.root / "scratch"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"


STALE_TEMPORARY_S = 3600.0


def remove_stale_temporaries(target: Path, older_than_s: float = STALE_TEMPORARY_S) -> None:
    """Delete temporaries of ``target`` left by a writer that was killed before its rename.

    Only old ones: a fresh temporary may belong to a concurrent writer still at work.
    """
    cutoff = time.time() - older_than_s
    for leftover in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink()


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    The temporary file sits in the same directory so the final ``os.replace`` is an
    atomic rename on one filesystem. On any exception the temporary file is removed
    and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600; give the final file the mode a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as error:
        # A full disk (ENOSPC) names no file by itself; say which output was not written.
        error.add_note(f"while writing {target} (its previous contents are unchanged)")
        raise
    finally:
        tmp.unlink(missing_ok=True)


def write_parquet_atomic(table: pa.Table, target: Path) -> Path:
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return Path(target)


def write_bytes_atomic(data: bytes, target: Path) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_text_atomic(text: str, target: Path) -> Path:
    return write_bytes_atomic(text.encode("utf-8"), target)


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks so large shards stay out of memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def table_fingerprint(table: pa.Table) -> str:
    """Content hash of an Arrow table, independent of chunking and file encoding.

    Used as the Dagster data version of per-shard tables, so a rerun that produces
    the same rows does not make anything downstream look stale.
    """
    digest = hashlib.sha256()
    digest.update(table.schema.to_string(show_schema_metadata=False).encode())
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table.combine_chunks())
    digest.update(sink.getvalue().to_pybytes())
    return digest.hexdigest()


# Rows per record batch a per-shard stage streams (``StorageResource.batch_rows``). Peak
# memory is set by it, not the shard; a paraphrase stage turns each batch into Python
# objects (texts, keys, requests, answers) and the allocator keeps some of what a batch
# freed, so a smaller batch also keeps the peak from creeping up over a long shard.
# bench_data_scale, peak RSS at 1M / at 100k captions, 65,536-row batches vs 16,384:
# stage 2 596 / 476 MB (1.25x) vs 464 / 431 MB (1.07x), and no slower.
STREAM_BATCH_ROWS = 1 << 14

# Rows per block the streamed fingerprint hashes: a table of at most this many rows hashes
# exactly as ``table_fingerprint`` always did (one IPC record batch), so every shard
# written before streaming keeps its data version; larger tables hash one IPC record
# batch per block, whatever batches they were written in (a one-time change for them).
FINGERPRINT_BLOCK_ROWS = 1 << 16


class _HashSink:
    """A write-only file object that feeds what is written into a sha256."""

    def __init__(self, digest: hashlib._Hash) -> None:
        self._digest = digest
        self.closed = False

    def write(self, data: bytes) -> int:
        self._digest.update(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class StreamingFingerprint:
    """``table_fingerprint`` computed batch by batch, in memory set by the block size.

    Incoming batches are regrouped into blocks of ``block_rows`` rows (the last one
    shorter), each combined into one contiguous record batch and written to an IPC
    stream that is hashed, never stored; so the value depends on the rows alone, not on
    how they were batched, and equals ``table_fingerprint`` for tables of at most
    ``block_rows`` rows.
    """

    def __init__(self, table_schema: pa.Schema, block_rows: int = FINGERPRINT_BLOCK_ROWS) -> None:
        if block_rows < 1:
            raise ValueError(f"block_rows must be positive, got {block_rows}")
        self._schema = table_schema
        self._block_rows = block_rows
        self._digest = hashlib.sha256()
        self._digest.update(table_schema.to_string(show_schema_metadata=False).encode())
        self._writer = pa.ipc.new_stream(_HashSink(self._digest), table_schema)
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._rows = 0

    def update(self, batch: pa.RecordBatch) -> None:
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        while self._pending_rows >= self._block_rows:
            self._emit(self._block_rows)

    def _emit(self, rows: int) -> None:
        pending = pa.Table.from_batches(self._pending, self._schema)
        block, rest = pending.slice(0, rows), pending.slice(rows)
        # One record batch per block, copied into fresh buffers: a slice serialises with
        # different padding and bitmap bytes than the same rows built from scratch.
        fresh = pa.concat_tables([block, self._schema.empty_table()]).combine_chunks()
        self._writer.write_table(fresh)
        self._rows += rows
        self._pending = rest.combine_chunks().to_batches() if rest.num_rows else []
        self._pending_rows = rest.num_rows

    def hexdigest(self) -> str:
        """The fingerprint of every row given so far; ends the stream (call once)."""
        if self._pending_rows or self._rows == 0:
            if self._pending_rows:
                self._emit(self._pending_rows)
            else:  # an empty table: what table_fingerprint writes for one
                self._writer.write_table(self._schema.empty_table().combine_chunks())
        self._writer.close()
        return self._digest.hexdigest()


class ParquetStreamWriter:
    """Batches written to an open Parquet file and hashed on the way (``parquet_stream``)."""

    def __init__(self, path: Path, table_schema: pa.Schema) -> None:
        self.schema = table_schema
        self.rows = 0
        self.fingerprint = ""  # set when the ``parquet_stream`` block ends without error
        self._writer = pq.ParquetWriter(path, table_schema, compression="zstd")
        self._hash = StreamingFingerprint(table_schema)

    def write(self, rows: pa.Table | pa.RecordBatch) -> None:
        table = rows if isinstance(rows, pa.Table) else pa.Table.from_batches([rows])
        if not table.schema.equals(self.schema):
            raise ValueError(f"batch schema {table.schema} differs from the file's {self.schema}")
        if table.num_rows == 0:
            return
        self._writer.write_table(table)
        for batch in table.to_batches():
            self._hash.update(batch)
        self.rows += table.num_rows


@contextlib.contextmanager
def parquet_stream(target: Path, table_schema: pa.Schema) -> Iterator[ParquetStreamWriter]:
    """Write a table batch by batch to ``target``, atomically, hashing it on the way.

    Rows go to a temporary sibling (``atomic_path``) through ``pq.ParquetWriter`` (zstd,
    like ``write_parquet_atomic``) and are renamed onto ``target`` only when the block
    ends without an error, so memory is set by the batch size, not the table's, and a
    kill leaves the previous file (or none) in place. On exit the writer's ``fingerprint``
    is the table's ``table_fingerprint`` (see ``StreamingFingerprint``).
    """
    with atomic_path(Path(target)) as tmp:
        writer = ParquetStreamWriter(tmp, table_schema)
        try:
            yield writer
        finally:
            writer._writer.close()
        writer.fingerprint = writer._hash.hexdigest()


def rebatched(batches: Iterable[pa.RecordBatch], batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The rows of ``batches`` in order, ``batch_rows`` at a time (the last batch shorter):
    a batch of the right size passes as it is, others are glued together (a copy of at
    most one batch)."""
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    for batch in batches:
        if not pending and batch.num_rows == batch_rows:
            yield batch
            continue
        pending.append(batch)
        pending_rows += batch.num_rows
        if pending_rows >= batch_rows:
            joined = pa.Table.from_batches(pending)
            yield joined.slice(0, batch_rows).combine_chunks().to_batches()[0]
            pending_rows -= batch_rows
            pending = joined.slice(batch_rows).combine_chunks().to_batches()[:1]
            pending = pending if pending_rows else []
    if pending_rows:
        yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]


def row_group_batches(
    parquet_file: pq.ParquetFile, batch_rows: int, columns: list[str] | None = None
) -> Iterator[pa.RecordBatch]:
    """The file's rows in order, ``batch_rows`` at a time (the last batch shorter), read one
    row group after the other.

    ``iter_batches`` over the whole file yields the same batches, but pyarrow's reader keeps
    memory of the row groups it has passed: reading bench_data_scale's 5M-row shard (76 row
    groups of 65,536) its resident set grew linearly from 136 to 285 MB, one row group at a
    time it stays at 164 MB. Batches straddling a row group boundary are glued back
    together (``rebatched``), so callers see the batches they always did.
    """
    yield from rebatched(
        (
            batch
            for group in range(parquet_file.num_row_groups)
            for batch in parquet_file.iter_batches(
                batch_size=batch_rows, row_groups=[group], columns=columns
            )
        ),
        batch_rows,
    )


@dataclass(frozen=True)
class ParquetTable:
    """A per-shard Parquet file handed between assets instead of its rows.

    A streaming stage reads its input batch by batch (``batches``) and writes its output
    with ``parquet_stream``, so neither side holds the shard. ``location`` is a local
    path or an fsspec URI.
    """

    location: str

    def _open(self) -> contextlib.AbstractContextManager[pq.ParquetFile]:
        from upath import UPath

        @contextlib.contextmanager
        def opened() -> Iterator[pq.ParquetFile]:
            with UPath(self.location).open("rb") as handle:
                yield pq.ParquetFile(handle)

        return opened()

    @property
    def schema(self) -> pa.Schema:
        with self._open() as parquet_file:
            return parquet_file.schema_arrow

    @property
    def num_rows(self) -> int:
        with self._open() as parquet_file:
            return parquet_file.metadata.num_rows

    def batches(
        self, batch_rows: int, columns: list[str] | None = None
    ) -> Iterator[pa.RecordBatch]:
        """The rows in order, at most ``batch_rows`` at a time, one row group after the
        other: pyarrow's ``iter_batches`` over all row groups reads ahead and held most of
        a 200 MB file (measured with ``training``'s memory probe); per row group it holds
        one batch."""
        with self._open() as parquet_file:
            for group in range(parquet_file.num_row_groups):
                yield from parquet_file.iter_batches(
                    batch_size=batch_rows, row_groups=[group], columns=columns
                )

    def read(self, columns: list[str] | None = None) -> pa.Table:
        """Every row at once: for small tables and for consumers that need them all."""
        with self._open() as parquet_file:
            return parquet_file.read(columns=columns)
