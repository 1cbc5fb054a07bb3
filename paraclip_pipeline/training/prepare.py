"""Training data prepared on disk with bounded memory: what the stream reads.

Every shard's filtered pairs and image embeddings become, in a work directory beside the
checkpoint (``<output_dir>.train-data/``):

- ``train.parquet``: the train rows (``split == "train"``), one per normalised caption
  across all shards (the smallest caption_id), sorted by caption_id, with ``has_image``;
- ``image_embeddings.npy``: float32 ``rows x dim``, aligned to those rows (zero rows where
  there is no image), memory-mapped by the loader, never one in-memory matrix;
- ``has_image.npy`` and ``prepared.json`` (counts, the image models, the fingerprint).

Pairs go through in record batches (normalised with ``filtering.features``, the one
definition of "the same caption"); dedup, duplicate checks, the join and the sort run
in DuckDB under ``DUCKDB_MEMORY_LIMIT`` and spill past it. A directory whose recorded
sources (paths, sizes, mtimes) equal the current ones is reused, so a resumed run does
not prepare again.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
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

TRAIN_FILE = "train.parquet"
EMBEDDINGS_FILE = "image_embeddings.npy"
HAS_IMAGE_FILE = "has_image.npy"
META_FILE = "prepared.json"
TRAIN_COLUMNS = [schema.CAPTION_ID, schema.TEXT, schema.PARAPHRASE_1, schema.PARAPHRASE_2]
EMBEDDING_COLUMNS = schema.IMAGE_EMBEDDINGS_SCHEMA.names
# Small row groups: the loader reads one shuffle window (a row range) at a time.
ROW_GROUP_ROWS = 8192
BATCH_ROWS = 1 << 15
DUCKDB_MEMORY_LIMIT = "512MB"
_KEY = "__normalised"
# An in-memory table given as a source is written here first (tests, small runs).
Source = Sequence[ParquetTable | str | Path] | pa.Table


@dataclass(frozen=True)
class PreparedData:
    """The prepared train rows on disk and what training needs to know about them."""

    directory: str
    rows: int
    dim: int
    rows_with_image: int
    image_embedding_models: frozenset[str]
    rows_without_embedding_row: int
    # Train rows dropped because a smaller caption_id had the same normalised caption.
    duplicate_captions_dropped: int
    fingerprint: str
    sources: list[str]

    def __len__(self) -> int:
        return self.rows

    @property
    def train_path(self) -> Path:
        return Path(self.directory) / TRAIN_FILE

    def embeddings(self) -> np.ndarray:
        """(rows, dim) float32, memory-mapped (a zero-width array is not mappable)."""
        path = Path(self.directory) / EMBEDDINGS_FILE
        return np.load(path, mmap_mode="r" if self.dim and self.rows else None)

    def has_image(self) -> np.ndarray:
        return np.load(Path(self.directory) / HAS_IMAGE_FILE, mmap_mode="r" if self.rows else None)

    def caption_ids(self) -> pa.ChunkedArray:
        return pq.read_table(self.train_path, columns=[schema.CAPTION_ID]).column(0)

    @classmethod
    def open(cls, directory: Path) -> PreparedData:
        meta = json.loads((Path(directory) / META_FILE).read_text(encoding="utf-8"))
        models = frozenset(meta.pop("image_embedding_models"))
        directory = str(Path(directory).resolve())
        return cls(**meta, image_embedding_models=models, directory=directory)

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def prepared_dir_for(output_dir: Path) -> Path:
    return Path(output_dir).with_name(f"{Path(output_dir).name}.train-data")


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


def _local_paths(handles: list[ParquetTable], work: Path, columns: list[str]) -> list[str]:
    """Local paths DuckDB can read: a file behind an fsspec URI is copied batch by batch."""
    paths = []
    for index, handle in enumerate(handles):
        if UPath(handle.location).protocol in ("", "file", "local"):
            paths.append(str(UPath(handle.location).path))
            continue
        local = work / f"embeddings-{index}.parquet"
        with pq.ParquetWriter(
            local, pa.schema([handle.schema.field(c) for c in columns])
        ) as writer:
            for batch in handle.batches(BATCH_ROWS, columns):
                writer.write_batch(batch)
        paths.append(str(local))
    return paths


def _connect(work: Path) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    connection.execute(f"SET memory_limit = '{DUCKDB_MEMORY_LIMIT}'")
    spill = str(work / "duckdb").replace("'", "''")
    connection.execute(f"SET temp_directory = '{spill}'")
    return connection


def _check_unique(connection: duckdb.DuckDBPyConnection, relation: str, what: str) -> None:
    row = connection.execute(
        f"SELECT {schema.CAPTION_ID} FROM {relation} GROUP BY 1 HAVING count(*) > 1 LIMIT 1"
    ).fetchone()
    if row is not None:
        raise TrainingDataError(f"{what}: caption_id {row[0]} appears more than once")


def _joined_batches(
    connection: duckdb.DuckDBPyConnection, keyed: Path, embeddings: list[str]
) -> tuple[int, int, Iterator[pa.RecordBatch]]:
    """(keyed rows, deduplicated rows, the deduplicated rows joined, sorted by caption_id)."""
    connection.read_parquet(str(keyed)).create_view("keyed")
    connection.read_parquet(embeddings).create_view("embeddings")
    _check_unique(connection, "keyed", "filtered pairs")
    _check_unique(connection, "embeddings", "image embeddings")
    connection.execute(
        "CREATE VIEW unique_train AS SELECT * FROM keyed "
        f"QUALIFY row_number() OVER (PARTITION BY {_KEY} ORDER BY {schema.CAPTION_ID}) = 1"
    )
    counts = connection.execute(
        "SELECT (SELECT count(*) FROM keyed), (SELECT count(*) FROM unique_train)"
    ).fetchone()
    assert counts is not None
    columns = ", ".join(f"t.{name}" for name in TRAIN_COLUMNS)
    extra = ", ".join(f"e.{name}" for name in EMBEDDING_COLUMNS[1:])
    result = connection.execute(
        f"SELECT {columns}, {extra} FROM unique_train t "
        f"LEFT JOIN embeddings e ON t.{schema.CAPTION_ID} = e.{schema.CAPTION_ID} "
        f"ORDER BY t.{schema.CAPTION_ID}"
    )
    reader = result.fetch_record_batch(BATCH_ROWS)
    return int(counts[0]), int(counts[1]), iter(reader)


class _EmbeddingWriter:
    """Fills ``image_embeddings.npy`` batch by batch; the width is the first image row's."""

    def __init__(self, path: Path, rows: int) -> None:
        self.path, self.rows, self.offset = path, rows, 0
        self.matrix: np.ndarray | None = None
        self.models: set[str] = set()
        self.with_image = 0

    def write(self, batch: pa.RecordBatch) -> np.ndarray:
        """Checks and stores one batch's embeddings; returns its has_image mask."""
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
        if len(lengths) and self.matrix is None:
            self.matrix = np.lib.format.open_memmap(
                self.path, mode="w+", dtype=np.float32, shape=(self.rows, int(lengths[0]))
            )
        if len(lengths):
            assert self.matrix is not None
            dim = self.matrix.shape[1]
            if (lengths != dim).any():
                bad = int(np.argmax(lengths != dim))
                caption_id = batch.filter(has_image).column(schema.CAPTION_ID)[bad]
                raise TrainingDataError(
                    f"image_embeddings row caption_id={caption_id} has a "
                    f"{schema.IMAGE_EMBEDDING} of length {int(lengths[bad])}, other rows have {dim}"
                )
            flat = pc.list_flatten(with_image).to_numpy(zero_copy_only=False)
            rows = np.flatnonzero(mask) + self.offset
            self.matrix[rows] = flat.astype(np.float32).reshape(-1, dim)
            models = batch.filter(has_image).column(schema.IMAGE_EMBEDDING_MODEL)
            self.models.update(m for m in pc.unique(models).to_pylist() if m is not None)
            self.with_image += len(lengths)
        self.offset += len(batch)
        return mask

    def close(self) -> int:
        """Flush; returns the width (0 when no row has an image)."""
        if self.matrix is None:
            np.save(self.path, np.zeros((self.rows, 0), np.float32))
            return 0
        self.matrix.flush()
        dim = int(self.matrix.shape[1])
        del self.matrix
        return dim


def _json_list_digest(digest: hashlib._Hash, values: Iterator[str]) -> None:
    """``digest.update(json.dumps(list(values)))`` without the list."""
    digest.update(b"[")
    for index, value in enumerate(values):
        digest.update((", " if index else "").encode() + json.dumps(value).encode())
    digest.update(b"]")


def _fingerprint(directory: Path) -> str:
    """Hash of the rows, embeddings and has_image: same fingerprint, same training data."""
    digest = hashlib.sha256()
    parquet = pq.ParquetFile(directory / TRAIN_FILE)
    for column in TRAIN_COLUMNS:
        values = (
            value
            for batch in parquet.iter_batches(BATCH_ROWS, columns=[column])
            for value in batch.column(0).to_pylist()
        )
        _json_list_digest(digest, values)
    matrix = np.load(directory / EMBEDDINGS_FILE, mmap_mode="r")
    for start in range(0, len(matrix), BATCH_ROWS):
        digest.update(np.ascontiguousarray(matrix[start : start + BATCH_ROWS]).tobytes())
    digest.update(np.load(directory / HAS_IMAGE_FILE).tobytes())
    return digest.hexdigest()


def _build(pairs: list[ParquetTable], embeddings: list[ParquetTable], staging: Path) -> dict:
    keyed = staging / "keyed.parquet"
    _keyed_train_rows(pairs, keyed)
    for handle in embeddings:
        _require_columns(handle, EMBEDDING_COLUMNS, "image embeddings")
    train_schema = pa.schema(
        [*(pa.field(name, pa.string()) for name in TRAIN_COLUMNS), (schema.HAS_IMAGE, pa.bool_())]
    )
    with _connect(staging) as connection:
        local = _local_paths(embeddings, staging, EMBEDDING_COLUMNS)
        keyed_rows, rows, batches = _joined_batches(connection, keyed, local)
        writer = _EmbeddingWriter(staging / EMBEDDINGS_FILE, rows)
        masks = [np.zeros(0, np.bool_)]  # one byte a row: small beside everything else
        without_row = 0
        with pq.ParquetWriter(staging / TRAIN_FILE, train_schema) as train_writer:
            for batch in batches:
                mask = writer.write(batch)
                masks.append(mask)
                without_row += int(pc.sum(pc.is_null(batch.column(schema.HAS_IMAGE))).as_py() or 0)
                columns = [batch.column(name) for name in TRAIN_COLUMNS]
                table = pa.Table.from_arrays([*columns, pa.array(mask)], schema=train_schema)
                train_writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        dim = writer.close()
    np.save(staging / HAS_IMAGE_FILE, np.concatenate(masks))
    keyed.unlink()
    shutil.rmtree(staging / "duckdb", ignore_errors=True)
    return {
        "rows": rows,
        "dim": dim,
        "rows_with_image": writer.with_image,
        "image_embedding_models": sorted(writer.models),
        "rows_without_embedding_row": without_row,
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
