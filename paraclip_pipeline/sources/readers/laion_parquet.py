"""LAION Parquet shards.

``TEXT`` (required, string), ``SAMPLE_ID`` (int or string), ``URL``, ``NSFW``,
``image_path``, ``image_embedding_model`` (strings) and ``image_embedding`` (list of
floats; needs ``image_embedding_model``) are optional. ``HEIGHT``, ``WIDTH``, ``LICENSE``
and ``similarity`` are LAION metadata that the pipeline does not carry. Read in record
batches of ``batch_rows``, one row group at a time (``storage.row_group_batches``): memory is
set by the batch and the row group, not the file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from upath import UPath

from paraclip_pipeline import schema
from paraclip_pipeline.sources.readers.parsed import (
    EMBEDDING_TYPE,
    ParsedShard,
    ShardReadError,
    strings_from_arrow,
)
from paraclip_pipeline.storage import STREAM_BATCH_ROWS, row_group_batches

LAION_TEXT = "TEXT"
LAION_SAMPLE_ID = "SAMPLE_ID"
LAION_URL = "URL"
LAION_NSFW = "NSFW"


def _is_string_like(data_type: pa.DataType) -> bool:
    return (
        pa.types.is_string(data_type)
        or pa.types.is_large_string(data_type)
        or pa.types.is_string_view(data_type)
    )


def _is_float_list(data_type: pa.DataType) -> bool:
    return (
        pa.types.is_list(data_type)
        or pa.types.is_large_list(data_type)
        or pa.types.is_fixed_size_list(data_type)
    ) and pa.types.is_floating(data_type.value_type)


_STRING = ("a string", _is_string_like)
_LAION_COLUMN_TYPES: dict[str, tuple[str, Callable[[pa.DataType], bool]]] = {
    LAION_TEXT: _STRING,
    LAION_SAMPLE_ID: (
        "an integer or a string",
        lambda data_type: pa.types.is_integer(data_type) or _is_string_like(data_type),
    ),
    LAION_URL: _STRING,
    LAION_NSFW: _STRING,
    schema.IMAGE_PATH: _STRING,
    schema.IMAGE_EMBEDDING_MODEL: _STRING,
    schema.IMAGE_EMBEDDING: ("a list of floats", _is_float_list),
}


def _checked_columns(path: UPath, parquet_file: pq.ParquetFile) -> list[str]:
    available = parquet_file.schema_arrow
    wanted = [name for name in _LAION_COLUMN_TYPES if name in available.names]
    if LAION_TEXT not in wanted:
        raise ShardReadError(
            f"{path}: required caption column {LAION_TEXT!r} is missing; "
            f"columns found: {', '.join(available.names) or '(none)'}"
        )
    for name in wanted:
        description, accepts = _LAION_COLUMN_TYPES[name]
        data_type = available.field(name).type
        if not accepts(data_type):
            raise ShardReadError(
                f"{path}: column {name!r} has type {data_type}, expected {description}"
            )
    if schema.IMAGE_EMBEDDING in wanted and schema.IMAGE_EMBEDDING_MODEL not in wanted:
        raise ShardReadError(
            f"{path}: column {schema.IMAGE_EMBEDDING!r} needs a "
            f"{schema.IMAGE_EMBEDDING_MODEL!r} column naming the image model"
        )
    return wanted


def iter_laion_parquet(path: UPath, batch_rows: int = STREAM_BATCH_ROWS) -> Iterator[ParsedShard]:
    first_row = 0
    dimensions: set[int] = set()
    try:
        with path.open("rb") as handle:
            parquet_file = pq.ParquetFile(handle)
            wanted = _checked_columns(path, parquet_file)
            for batch in row_group_batches(parquet_file, batch_rows, wanted):
                parsed = _parsed_batch(batch, first_row)
                if parsed.image_embeddings is not None:
                    lengths = pc.list_value_length(parsed.image_embeddings).drop_null()
                    dimensions.update(pc.unique(lengths).to_pylist())
                    if len(dimensions) > 1:
                        raise ShardReadError(
                            f"{path}: column {schema.IMAGE_EMBEDDING!r} mixes embedding sizes "
                            f"{sorted(dimensions)}; one shard must use one image model"
                        )
                first_row += batch.num_rows
                yield parsed
    except (pa.ArrowException, OSError) as error:
        raise ShardReadError(f"{path}: not a readable Parquet file ({error})") from error


def _parsed_batch(batch: pa.RecordBatch, first_row: int) -> ParsedShard:
    row_count = batch.num_rows

    def strings(name: str) -> pa.Array:
        if name not in batch.schema.names:
            return pa.nulls(row_count, pa.string())
        return strings_from_arrow(pa.chunked_array([batch.column(name)]))[0]

    embeddings: pa.Array | None = None
    models: pa.Array | None = None
    if schema.IMAGE_EMBEDDING in batch.schema.names:
        embeddings = batch.column(schema.IMAGE_EMBEDDING).cast(EMBEDDING_TYPE)
        models = strings(schema.IMAGE_EMBEDDING_MODEL)
    texts, text_undecodable = strings_from_arrow(pa.chunked_array([batch.column(LAION_TEXT)]))
    return ParsedShard(
        source_rows=pa.array(range(first_row, first_row + row_count), pa.int64()),
        texts=texts,
        text_undecodable=text_undecodable,
        sample_ids=strings(LAION_SAMPLE_ID),
        urls=strings(LAION_URL),
        nsfw=strings(LAION_NSFW),
        image_paths=strings(schema.IMAGE_PATH),
        image_embeddings=embeddings,
        image_embedding_models=models,
    )
