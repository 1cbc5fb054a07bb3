"""Frozen image-tower embeddings, computed once per shard and reused by every training run.

Per raw-caption row, in order of preference:
1. a precomputed ``image_embedding`` (as LAION ships them): kept as is after checking
   that ``image_embedding_model`` names this model's image tower and the dimension fits;
2. an ``image_path``: the image is read and run through the frozen tower once;
3. neither, or an unreadable image file: ``has_image`` false and a null embedding (the
   row still trains on L2/L3; it is masked out of L1, never dropped).

How many image files could not be read (and why) is counted in an ``ImageEmbeddingStats``
the caller reports. A shard is embedded batch by batch (``stream_image_embeddings``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image, UnidentifiedImageError

from paraclip_pipeline import schema
from paraclip_pipeline.modeling.factory import LoadedClip
from paraclip_pipeline.storage import parquet_stream

# The raw_captions columns the step reads (not the captions, URLs...).
INPUT_COLUMNS = [
    schema.CAPTION_ID,
    schema.IMAGE_PATH,
    schema.IMAGE_EMBEDDING,
    schema.IMAGE_EMBEDDING_MODEL,
]
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
    """Refuse precomputed embeddings of another tower or width, naming the first bad row.

    Arrow compute, not Python lists: a 64k-row batch of 512-wide vectors as lists is
    33M Python floats."""
    embeddings = rows.column(schema.IMAGE_EMBEDDING)
    present = pc.is_valid(embeddings)
    models = rows.column(schema.IMAGE_EMBEDDING_MODEL)
    for model in pc.unique(models.filter(present)).to_pylist():
        if not clip.accepts_image_model(model):
            first = _first(rows, pc.and_(present, _equal_or_null(models, model)))
            raise ImageEmbeddingError(
                f"row caption_id={first!r}: column {schema.IMAGE_EMBEDDING_MODEL}={model!r} "
                f"does not match the image tower {clip.model_id!r} (accepted: "
                f"{[clip.model_id, *clip.model_id_aliases]}); precomputed embeddings must come "
                "from the same frozen image tower"
            )
    lengths = pc.list_value_length(embeddings)
    wrong = pc.and_(present, pc.not_equal(lengths, clip.embed_dim))
    if pc.any(wrong).as_py():
        first = _first(rows, wrong)
        length = lengths.filter(wrong)[0].as_py()
        raise ImageEmbeddingError(
            f"row caption_id={first!r}: column {schema.IMAGE_EMBEDDING} has "
            f"{length} values, the model's embed_dim is {clip.embed_dim}"
        )


def _equal_or_null(column: pa.ChunkedArray, value: str | None) -> pa.ChunkedArray:
    return pc.is_null(column) if value is None else pc.fill_null(pc.equal(column, value), False)


def _first(rows: pa.Table, mask: pa.ChunkedArray) -> str:
    return str(rows.column(schema.CAPTION_ID).filter(mask)[0])


def _load_image(path: str) -> Image.Image:
    with Image.open(path) as image:
        image.load()
        return image.convert("RGB")


def compute_image_embeddings(
    rows: pa.Table | pa.RecordBatch,
    clip: LoadedClip,
    stats: ImageEmbeddingStats | None = None,
    batch_size: int = 64,
) -> pa.Table:
    """One ``IMAGE_EMBEDDINGS_SCHEMA`` row per input row, in input order; counts go to
    ``stats`` (added to what it holds, so one object can follow a whole stream)."""
    rows = pa.table(rows) if isinstance(rows, pa.RecordBatch) else rows
    stats = stats if stats is not None else ImageEmbeddingStats()
    missing = [name for name in INPUT_COLUMNS if name not in rows.column_names]
    if missing:
        raise ImageEmbeddingError(f"raw caption rows lack columns {missing}")
    _check_precomputed(rows, clip)
    caption_ids = rows.column(schema.CAPTION_ID)
    given = rows.column(schema.IMAGE_EMBEDDING).cast(pa.list_(pa.float32()))
    stats.rows += len(rows)
    stats.precomputed += len(rows) - given.null_count
    paths = rows.column(schema.IMAGE_PATH)
    wanted = pc.and_(pc.is_null(given), pc.fill_null(pc.not_equal(paths, ""), False))
    pending = [
        (int(index), path)
        for index, path in zip(
            pc.indices_nonzero(wanted).to_pylist(), paths.filter(wanted).to_pylist(), strict=True
        )
    ]
    computed: dict[int, np.ndarray] = {}
    # Batches of decoded images: the whole shard's pixels never sit in memory at once.
    for start in range(0, len(pending), batch_size):
        readable: list[tuple[int, Image.Image]] = []
        for index, path in pending[start : start + batch_size]:
            try:
                readable.append((index, _load_image(path)))
            except (OSError, UnidentifiedImageError) as error:
                stats.unreadable[caption_ids[index].as_py()] = f"{path}: {error}"
        if not readable:
            continue
        vectors = clip.encode_images([image for _, image in readable], batch_size=batch_size)
        for (index, _), vector in zip(readable, vectors, strict=True):
            computed[index] = vector.astype(np.float32)
        stats.computed += len(readable)
    stats.unreadable_images = len(stats.unreadable)
    models = pc.if_else(pc.is_valid(given), rows.column(schema.IMAGE_EMBEDDING_MODEL), None)
    embeddings: pa.Array | pa.ChunkedArray = given
    if computed:  # rows with image files: only these go through Python lists
        values = given.to_pylist()
        model_names = models.to_pylist()
        for index, vector in computed.items():
            values[index], model_names[index] = vector.tolist(), clip.model_id
        embeddings = pa.array(values, pa.list_(pa.float32()))
        models = pa.array(model_names, pa.string())
    has_image = pc.is_valid(embeddings)
    stats.without_image += len(rows) - int(pc.sum(has_image).as_py() or 0)
    return pa.Table.from_arrays(
        [caption_ids.cast(pa.string()), has_image, embeddings, models.cast(pa.string())],
        schema=schema.IMAGE_EMBEDDINGS_SCHEMA,
    )


def stream_image_embeddings(
    batches: Iterable[pa.RecordBatch | pa.Table], clip: LoadedClip, target: Path
) -> tuple[str, ImageEmbeddingStats]:
    """Embed a shard batch by batch into ``target`` (atomically, in ``ROW_GROUP_ROWS`` row
    groups); returns the data version (the output's ``table_fingerprint``) and the stats.

    Memory is set by the batch, not the shard: a LAION shard's precomputed embeddings
    (1M rows x 512 floats) held as one table and its Python lists took over 10 GB.
    """
    stats = ImageEmbeddingStats()
    with parquet_stream(target, schema.IMAGE_EMBEDDINGS_SCHEMA) as writer:
        for batch in batches:
            table = compute_image_embeddings(batch, clip, stats)
            for start in range(0, len(table), ROW_GROUP_ROWS):
                writer.write(table.slice(start, ROW_GROUP_ROWS))
    return writer.fingerprint, stats
