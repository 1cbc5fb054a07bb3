"""Training data prepared on disk with bounded memory: what the stream reads.

Every shard's filtered pairs and image embeddings become, in a work directory beside the
checkpoint (``<output_dir>.train-data/``):

- ``train.parquet``: the train rows (``split == "train"``), one per normalised caption
  across all shards (the smallest caption_id), sorted by caption_id, in small row groups;
- ``image_embeddings.npy``: float32 ``rows x dim`` aligned to those rows (zero rows where
  there is no image), read a micro-batch of rows at a time, never one in-memory matrix;
- ``has_image.npy`` (one byte a row) and ``prepared.json`` (counts, image models, the
  fingerprint: the same hash of the same rows as the in-memory loop's).

Pairs go through in record batches (normalised with ``filtering.features``, the one
definition of "the same caption"); the dedup, duplicate-id checks and the sort run in
DuckDB under ``DUCKDB_MEMORY_LIMIT`` (spilling past it) on the narrow columns only, and
each embedding row is then written to its train position, so the embeddings are read
once, in file order, and never sorted. Measured (``memory_probe``, 512-wide): 50k -> 200k
rows grow the peak by about 80 MB, against +293 MB of matrix. A directory whose recorded
sources (paths, sizes, mtimes) equal the current ones is reused, so a resumed run does
not prepare again.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from upath import UPath

from paraclip_pipeline import schema
from paraclip_pipeline.filtering.features import normalised_text
from paraclip_pipeline.storage import ParquetTable, write_parquet_atomic
from paraclip_pipeline.training.checkpoint import atomic_directory
from paraclip_pipeline.training.data import TrainingDataError
from paraclip_pipeline.training.prepared import (
    EMBEDDINGS_FILE,
    HAS_IMAGE_FILE,
    META_FILE,
    TRAIN_COLUMNS,
    TRAIN_FILE,
    PreparedData,
)

EMBEDDING_COLUMNS = schema.IMAGE_EMBEDDINGS_SCHEMA.names
# Small row groups: the loader reads one shuffle window (a row range) at a time.
ROW_GROUP_ROWS = 8192
BATCH_ROWS = 1 << 15
# 16 MB of float32 at width 512: the embeddings are the wide part.
EMBEDDING_BATCH_ROWS = 1 << 13
DUCKDB_MEMORY_LIMIT = "256MB"
# One thread: each thread holds its own sort runs and hash tables (``filtering.id_ranges``).
DUCKDB_THREADS = 1
_KEY = "__normalised"
# An in-memory table given as a source is written here first (tests, small runs).
Source = Sequence[ParquetTable | str | Path] | pa.Table


def _handles(source: Source, work: Path, name: str) -> list[ParquetTable]:
    if isinstance(source, pa.Table):
        return [ParquetTable(str(write_parquet_atomic(source, work / f"{name}.parquet")))]
    return [item if isinstance(item, ParquetTable) else ParquetTable(str(item)) for item in source]


def _signature(handle: ParquetTable) -> str:
    info = UPath(handle.location).stat()
    return f"{handle.location}|{info.st_size}|{getattr(info, 'st_mtime_ns', info.st_mtime)}"


def _require_columns(handle: ParquetTable, expected: list[str], what: str) -> None:
    names = handle.schema.names
    missing = [name for name in expected if name not in names]
    if missing:
        raise TrainingDataError(f"{what} {handle.location} lacks columns {missing}; it has {names}")


def _keyed_train_rows(pairs: list[ParquetTable], target: Path) -> None:
    """The train rows of every pairs file with their normalised caption, batch by batch."""
    columns = [*TRAIN_COLUMNS, schema.SPLIT]
    keyed_schema = pa.schema([pa.field(name, pa.string()) for name in [*TRAIN_COLUMNS, _KEY]])
    with pq.ParquetWriter(target, keyed_schema) as writer:
        for handle in pairs:
            _require_columns(handle, columns, "filtered pairs")
            for batch in handle.batches(BATCH_ROWS, columns):
                train = pa.Table.from_batches([batch]).filter(
                    pc.equal(batch.column(schema.SPLIT), schema.TRAIN)
                )
                for column in TRAIN_COLUMNS:
                    nulls = pc.is_null(train.column(column))
                    if pc.any(nulls).as_py():
                        caption_id = train.filter(nulls).column(schema.CAPTION_ID)[0]
                        raise TrainingDataError(
                            f"filtered pairs {handle.location}: column {column!r} is null in "
                            f"a train row (caption_id={caption_id})"
                        )
                frame = pl.from_arrow(train.select(TRAIN_COLUMNS))
                assert isinstance(frame, pl.DataFrame)
                keyed = frame.with_columns(normalised_text(pl.col(schema.TEXT)).alias(_KEY))
                writer.write_table(keyed.to_arrow().cast(keyed_schema))


def _embedding_ids(embeddings: list[ParquetTable], target: Path) -> None:
    """(file, row, caption_id) of every image-embedding row: the join runs on these narrow
    columns, so the embeddings themselves are never sorted or held (DuckDB ran out of its
    memory limit sorting 200k x 512 floats as list payload)."""
    ids_schema = pa.schema(
        [("file", pa.int32()), ("row", pa.int64()), (schema.CAPTION_ID, pa.string())]
    )
    with pq.ParquetWriter(target, ids_schema) as writer:
        for index, handle in enumerate(embeddings):
            _require_columns(handle, EMBEDDING_COLUMNS, "image embeddings")
            row = 0
            for batch in handle.batches(BATCH_ROWS, [schema.CAPTION_ID]):
                files = pa.array(np.full(len(batch), index, np.int32))
                rows = pa.array(np.arange(row, row + len(batch)))
                writer.write_table(
                    pa.Table.from_arrays([files, rows, batch.column(0)], schema=ids_schema)
                )
                row += len(batch)


def _connect(work: Path) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(str(work / "prepare.duckdb"))
    connection.execute(f"SET memory_limit = '{DUCKDB_MEMORY_LIMIT}'")
    connection.execute(f"SET threads = {DUCKDB_THREADS}")
    spill = str(work / "duckdb").replace("'", "''")
    connection.execute(f"SET temp_directory = '{spill}'")
    return connection


def _check_unique(connection: duckdb.DuckDBPyConnection, relation: str, what: str) -> None:
    row = connection.execute(
        f"SELECT {schema.CAPTION_ID} FROM {relation} GROUP BY 1 HAVING count(*) > 1 LIMIT 1"
    ).fetchone()
    if row is not None:
        raise TrainingDataError(f"{what}: caption_id {row[0]} appears more than once")


def _train_rows(
    connection: duckdb.DuckDBPyConnection, keyed: Path, target: Path, positions: Path
) -> tuple[int, int]:
    """Write the deduplicated train rows sorted by caption_id to ``target``; returns (train
    rows before dedup, after). Leaves view ``positioned`` (caption_id, position).

    A hash aggregate on two narrow columns and one external sort, both of which DuckDB
    spills; positions are counted while streaming the sorted file. The window form (a
    ``row_number()`` dedup, a second for positions) ran out of 256 MB at 5M pairs.
    """
    connection.read_parquet(str(keyed)).create_view("keyed")
    _check_unique(connection, "keyed", "filtered pairs")
    connection.execute(
        f"CREATE TABLE kept AS SELECT min({schema.CAPTION_ID}) AS {schema.CAPTION_ID} "
        f"FROM keyed GROUP BY {_KEY}"
    )
    counts = connection.execute(
        "SELECT (SELECT count(*) FROM keyed), (SELECT count(*) FROM kept)"
    ).fetchone()
    assert counts is not None
    spill = str(target).replace("'", "''")
    connection.execute(
        f"COPY (SELECT {', '.join(f'keyed.{name}' for name in TRAIN_COLUMNS)} FROM keyed "
        f"SEMI JOIN kept USING ({schema.CAPTION_ID}) ORDER BY {schema.CAPTION_ID}) "
        f"TO '{spill}' (FORMAT parquet, ROW_GROUP_SIZE {ROW_GROUP_ROWS})"
    )
    connection.execute("DROP TABLE kept")
    _write_positions(target, positions)
    connection.read_parquet(str(positions)).create_view("positioned")
    return int(counts[0]), int(counts[1])


def _write_positions(train: Path, target: Path) -> None:
    """(caption_id, position) of every row of the sorted ``train`` file, in its order."""
    positions_schema = pa.schema([(schema.CAPTION_ID, pa.string()), ("position", pa.int64())])
    position = 0
    with pq.ParquetWriter(target, positions_schema) as writer:
        for batch in ParquetTable(str(train)).batches(BATCH_ROWS, [schema.CAPTION_ID]):
            numbers = pa.array(np.arange(position, position + len(batch), dtype=np.int64))
            writer.write_table(
                pa.Table.from_arrays([batch.column(0), numbers], schema=positions_schema)
            )
            position += len(batch)


def _positions(connection: duckdb.DuckDBPyConnection, ids: Path) -> _Positions:
    """Each image-embedding row's train position (-1: not a train row), in file order."""
    connection.read_parquet(str(ids)).create_view("embedding_ids")
    _check_unique(connection, "embedding_ids", "image embeddings")
    result = connection.execute(
        "SELECT coalesce(p.position, -1) FROM embedding_ids e "
        f"LEFT JOIN positioned p ON e.{schema.CAPTION_ID} = p.{schema.CAPTION_ID} "
        "ORDER BY e.file, e.row"
    )
    return _Positions(result.fetch_record_batch(BATCH_ROWS))


class _Positions:
    """A one-column stream of positions, consumed as many at a time as a batch has rows."""

    def __init__(self, reader: pa.RecordBatchReader) -> None:
        self.reader, self.buffer = reader, np.empty(0, np.int64)

    def take(self, count: int) -> np.ndarray:
        while len(self.buffer) < count:
            chunk = self.reader.read_next_batch().column(0).to_numpy()
            self.buffer = np.concatenate([self.buffer, chunk])
        head, self.buffer = self.buffer[:count], self.buffer[count:]
        return head


class _EmbeddingWriter:
    """Fills ``image_embeddings.npy`` (rows in train order) batch by batch; the width is the
    first image row's (in file order)."""

    def __init__(self, path: Path, rows: int) -> None:
        self.path, self.rows = path, rows
        self.dim: int | None = None
        self.has_image = np.zeros(rows, np.bool_)  # one byte a row
        self.models: set[str] = set()
        self.matched = 0

    def write(self, batch: pa.RecordBatch, positions: np.ndarray) -> None:
        """Checks and stores the embeddings of ``batch`` (rows of train rows) at ``positions``."""
        self.matched += len(batch)
        has_image = pc.fill_null(batch.column(schema.HAS_IMAGE), False)
        embeddings = batch.column(schema.IMAGE_EMBEDDING)
        missing = pc.and_(has_image, pc.is_null(embeddings))
        if pc.any(missing).as_py():
            caption_id = batch.filter(missing).column(schema.CAPTION_ID)[0]
            raise TrainingDataError(
                f"image_embeddings row caption_id={caption_id!r} has {schema.HAS_IMAGE}=true "
                f"but a null {schema.IMAGE_EMBEDDING}"
            )
        mask = has_image.to_numpy(zero_copy_only=False).astype(bool)
        with_image = embeddings.filter(has_image)
        lengths = pc.list_value_length(with_image).to_numpy(zero_copy_only=False)
        if not len(lengths):
            return
        if self.dim is None:
            self.dim = int(lengths[0])
            # A sparse file of zeros: rows without an image stay zero.
            np.lib.format.open_memmap(
                self.path, mode="w+", dtype=np.float32, shape=(self.rows, self.dim)
            ).flush()
        dim = self.dim
        if (lengths != dim).any():
            bad = int(np.argmax(lengths != dim))
            caption_id = batch.filter(has_image).column(schema.CAPTION_ID)[bad]
            raise TrainingDataError(
                f"image_embeddings row caption_id={caption_id} has a {schema.IMAGE_EMBEDDING} "
                f"of length {int(lengths[bad])}, other rows have {dim}"
            )
        flat = pc.list_flatten(with_image).to_numpy(zero_copy_only=False)
        # Mapped for this batch only, so its pages leave the resident set with it.
        matrix = np.load(self.path, mmap_mode="r+")
        matrix[positions[mask]] = flat.astype(np.float32).reshape(-1, dim)
        matrix.flush()
        del matrix
        self.has_image[positions[mask]] = True
        models = batch.filter(has_image).column(schema.IMAGE_EMBEDDING_MODEL)
        self.models.update(m for m in pc.unique(models).to_pylist() if m is not None)

    def close(self, directory: Path) -> int:
        """Flush and write has_image; returns the width (0 when no row has an image)."""
        np.save(directory / HAS_IMAGE_FILE, self.has_image)
        if self.dim is None:
            np.save(self.path, np.zeros((self.rows, 0), np.float32))
        return self.dim or 0


def _fill_embeddings(
    embeddings: list[ParquetTable], positions: _Positions, writer: _EmbeddingWriter
) -> None:
    """Walk each embeddings file in order beside its rows' train positions."""
    for handle in embeddings:
        for batch in handle.batches(EMBEDDING_BATCH_ROWS, EMBEDDING_COLUMNS):
            where = positions.take(len(batch))
            train = where >= 0
            writer.write(batch.filter(pa.array(train)), where[train])


def _json_list_digest(digest: hashlib._Hash, values: Iterator[str]) -> None:
    """``digest.update(json.dumps(list(values)))`` without the list."""
    digest.update(b"[")
    for index, value in enumerate(values):
        digest.update((", " if index else "").encode() + json.dumps(value).encode())
    digest.update(b"]")


def _fingerprint(directory: Path) -> str:
    """Hash of the rows, embeddings and has_image: same fingerprint, same training data."""
    digest = hashlib.sha256()
    train = ParquetTable(str(directory / TRAIN_FILE))
    for column in TRAIN_COLUMNS:
        values = (
            value
            for batch in train.batches(BATCH_ROWS, [column])
            for value in batch.column(0).to_pylist()
        )
        _json_list_digest(digest, values)
    with open(directory / EMBEDDINGS_FILE, "rb") as matrix:  # read, not mapped
        if np.lib.format.read_magic(matrix) == (1, 0):
            np.lib.format.read_array_header_1_0(matrix)
        else:
            np.lib.format.read_array_header_2_0(matrix)
        while chunk := matrix.read(1 << 24):
            digest.update(chunk)
    digest.update(np.load(directory / HAS_IMAGE_FILE).tobytes())
    return digest.hexdigest()


def _build(pairs: list[ParquetTable], embeddings: list[ParquetTable], staging: Path) -> dict:
    keyed, ids = staging / "keyed.parquet", staging / "embedding_ids.parquet"
    positions = staging / "positions.parquet"
    _keyed_train_rows(pairs, keyed)
    _embedding_ids(embeddings, ids)
    with _connect(staging) as connection:
        keyed_rows, rows = _train_rows(connection, keyed, staging / TRAIN_FILE, positions)
        writer = _EmbeddingWriter(staging / EMBEDDINGS_FILE, rows)
        _fill_embeddings(embeddings, _positions(connection, ids), writer)
    dim = writer.close(staging)
    for scratch in (keyed, ids, positions, staging / "prepare.duckdb"):
        scratch.unlink()
    shutil.rmtree(staging / "duckdb", ignore_errors=True)
    return {
        "rows": rows,
        "dim": dim,
        "rows_with_image": int(writer.has_image.sum()),
        "image_embedding_models": sorted(writer.models),
        "rows_without_embedding_row": rows - writer.matched,
        "duplicate_captions_dropped": keyed_rows - rows,
        "fingerprint": _fingerprint(staging),
    }


def prepare_training_data(pairs: Source, image_embeddings: Source, work_dir: Path) -> PreparedData:
    """Prepare (or reuse) ``work_dir`` from the pairs and image-embedding files of every
    shard; a pair with no image-embedding row trains without an image (L2, L3 only)."""
    work_dir = Path(work_dir).resolve()
    sources_dir = work_dir.with_name(f"{work_dir.name}.sources")
    pair_handles = _handles(pairs, sources_dir, "pairs")
    embedding_handles = _handles(image_embeddings, sources_dir, "image_embeddings")
    sources = (
        [_signature(h) for h in pair_handles] + ["|"] + [_signature(h) for h in embedding_handles]
    )
    if (work_dir / META_FILE).exists():
        existing = PreparedData.open(work_dir)
        if existing.sources == sources:
            shutil.rmtree(sources_dir, ignore_errors=True)
            return existing
        existing.remove()
    with atomic_directory(work_dir) as staging:
        meta = _build(pair_handles, embedding_handles, staging)
        meta["sources"] = sources
        (staging / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    shutil.rmtree(sources_dir, ignore_errors=True)
    return PreparedData.open(work_dir)
