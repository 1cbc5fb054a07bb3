"""Frozen image-tower embeddings, computed once per shard and reused by every training run.

Per raw-caption row, in order of preference:
1. a precomputed ``image_embedding`` (as LAION ships them): kept as is after checking
   that ``image_embedding_model`` names this model's image tower and the dimension fits;
2. an ``image_path``: the image is read and run through the frozen tower once;
3. neither, or an unreadable image file: ``has_image`` false and a null embedding (the
   row still trains on L2/L3; it is masked out of L1, never dropped).

How many image files could not be read (and why) travels in the output table's schema
metadata under ``paraclip.image_stats``; :func:`image_embedding_stats` reads it back.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image, UnidentifiedImageError

from paraclip_pipeline import schema
from paraclip_pipeline.modeling.factory import LoadedClip
from paraclip_pipeline.storage import parquet_stream

STATS_METADATA_KEY = b"paraclip.image_stats"
# 16 MB of 512-wide float32 a row group: readers (training.prepare) decode a row group at
# once, and pyarrow's default one (1M rows) of 512-wide embeddings is 2 GB.
ROW_GROUP_ROWS = 8192


class ImageEmbeddingError(ValueError):
    """Raw-caption rows whose image embeddings cannot be used with this model."""


@dataclass
class ImageEmbeddingStats:
    rows: int = 0
    precomputed: int = 0
    computed: int = 0
    without_image: int = 0
    unreadable_images: int = 0
    # caption_id -> why its image file could not be used
    unreadable: dict[str, str] = field(default_factory=dict)


def _check_precomputed(rows: pa.Table, clip: LoadedClip) -> None:
    embeddings = rows.column(schema.IMAGE_EMBEDDING).to_pylist()
    models = rows.column(schema.IMAGE_EMBEDDING_MODEL).to_pylist()
    for caption_id, embedding, model in zip(
        rows.column(schema.CAPTION_ID).to_pylist(), embeddings, models, strict=True
    ):
        if embedding is None:
            continue
        if not clip.accepts_image_model(model):
            raise ImageEmbeddingError(
                f"row caption_id={caption_id!r}: column {schema.IMAGE_EMBEDDING_MODEL}={model!r} "
                f"does not match the image tower {clip.model_id!r} (accepted: "
                f"{[clip.model_id, *clip.model_id_aliases]}); precomputed embeddings must come "
                "from the same frozen image tower"
            )
        if len(embedding) != clip.embed_dim:
            raise ImageEmbeddingError(
                f"row caption_id={caption_id!r}: column {schema.IMAGE_EMBEDDING} has "
                f"{len(embedding)} values, the model's embed_dim is {clip.embed_dim}"
            )


def _load_image(path: str) -> Image.Image:
    with Image.open(path) as image:
        image.load()
        return image.convert("RGB")


def compute_image_embeddings(rows: pa.Table, clip: LoadedClip, batch_size: int = 64) -> pa.Table:
    """One ``IMAGE_EMBEDDINGS_SCHEMA`` row per input row, in input order."""
    missing = [
        name
        for name in (
            schema.CAPTION_ID,
            schema.IMAGE_PATH,
            schema.IMAGE_EMBEDDING,
            schema.IMAGE_EMBEDDING_MODEL,
        )
        if name not in rows.column_names
    ]
    if missing:
        raise ImageEmbeddingError(f"raw caption rows lack columns {missing}")
    _check_precomputed(rows, clip)
    caption_ids = rows.column(schema.CAPTION_ID).to_pylist()
    embeddings: list[list[float] | None] = rows.column(schema.IMAGE_EMBEDDING).to_pylist()
    models: list[str | None] = [
        model if embedding is not None else None
        for model, embedding in zip(
            rows.column(schema.IMAGE_EMBEDDING_MODEL).to_pylist(), embeddings, strict=True
        )
    ]
    stats = ImageEmbeddingStats(rows=len(rows))
    stats.precomputed = sum(embedding is not None for embedding in embeddings)
    pending = [
        (index, path)
        for index, path in enumerate(rows.column(schema.IMAGE_PATH).to_pylist())
        if embeddings[index] is None and path
    ]
    # Batches of decoded images: the whole shard's pixels never sit in memory at once.
    for start in range(0, len(pending), batch_size):
        readable: list[tuple[int, Image.Image]] = []
        for index, path in pending[start : start + batch_size]:
            try:
                readable.append((index, _load_image(path)))
            except (OSError, UnidentifiedImageError) as error:
                stats.unreadable[caption_ids[index]] = f"{path}: {error}"
        if not readable:
            continue
        vectors = clip.encode_images([image for _, image in readable], batch_size=batch_size)
        for (index, _), vector in zip(readable, vectors, strict=True):
            embeddings[index] = vector.astype(np.float32).tolist()
            models[index] = clip.model_id
        stats.computed += len(readable)
    stats.unreadable_images = len(stats.unreadable)
    has_image = [embedding is not None for embedding in embeddings]
    stats.without_image = has_image.count(False)
    table = pa.Table.from_arrays(
        [
            pa.array(caption_ids, pa.string()),
            pa.array(has_image, pa.bool_()),
            pa.array(embeddings, pa.list_(pa.float32())),
            pa.array(models, pa.string()),
        ],
        schema=schema.IMAGE_EMBEDDINGS_SCHEMA,
    )
    return table.replace_schema_metadata({STATS_METADATA_KEY: json.dumps(asdict(stats))})


def write_image_embeddings(table: pa.Table, target: Path) -> str:
    """Write one shard's embeddings atomically in small row groups; returns the data
    version (``table_fingerprint`` of ``table``)."""
    with parquet_stream(target, table.schema) as writer:
        for start in range(0, len(table), ROW_GROUP_ROWS):
            writer.write(table.slice(start, ROW_GROUP_ROWS))
    return writer.fingerprint


def image_embedding_stats(table: pa.Table) -> ImageEmbeddingStats:
    """The stats recorded by :func:`compute_image_embeddings` in the table's metadata."""
    raw = (table.schema.metadata or {}).get(STATS_METADATA_KEY)
    if raw is None:
        raise ImageEmbeddingError("table carries no image-embedding stats metadata")
    return ImageEmbeddingStats(**json.loads(raw))
