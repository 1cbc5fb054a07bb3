"""The in-memory training data of the loop before streaming (issue 14), kept as the oracle
the prepared, streamed data must equal: same rows, same order, same embeddings."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import polars as pl
import pyarrow as pa

from paraclip_pipeline import schema
from paraclip_pipeline.filtering.features import normalised_text
from paraclip_pipeline.training.prepared import TRAIN_COLUMNS


def in_memory_rows(pairs: pa.Table, embeddings: pa.Table) -> tuple[pl.DataFrame, np.ndarray]:
    """(train rows with has_image, the (rows, dim) embedding matrix), as the old loop built
    them: one row per normalised caption (smallest caption_id), sorted by caption_id."""
    frame = pl.from_arrow(pairs)
    assert isinstance(frame, pl.DataFrame)
    train = (
        frame.filter(pl.col(schema.SPLIT) == schema.TRAIN)
        .select(TRAIN_COLUMNS)
        .sort(schema.CAPTION_ID)
        .with_columns(normalised_text(pl.col(schema.TEXT)).alias("key"))
        .unique(subset="key", keep="first", maintain_order=True)
        .drop("key")
    )
    images = pl.from_arrow(embeddings)
    assert isinstance(images, pl.DataFrame)
    joined = train.join(images, on=schema.CAPTION_ID, how="left", maintain_order="left")
    has_image = joined[schema.HAS_IMAGE].fill_null(False).to_numpy().astype(bool)
    vectors = joined[schema.IMAGE_EMBEDDING].to_list()
    dim = next((len(v) for v, h in zip(vectors, has_image, strict=True) if h), 0)
    matrix = np.zeros((len(joined), dim), np.float32)
    for row, (vector, with_image) in enumerate(zip(vectors, has_image, strict=True)):
        if with_image:
            matrix[row] = vector
    rows = joined.select(TRAIN_COLUMNS).with_columns(pl.Series(schema.HAS_IMAGE, has_image))
    return rows, matrix


def in_memory_fingerprint(rows: pl.DataFrame, matrix: np.ndarray) -> str:
    """The old ``TrainingData.fingerprint``: JSON of the four text columns, then the bytes
    of the embedding matrix and of has_image."""
    digest = hashlib.sha256()
    for column in TRAIN_COLUMNS:
        digest.update(json.dumps(rows[column].to_list()).encode())
    digest.update(matrix.tobytes())
    digest.update(rows[schema.HAS_IMAGE].to_numpy().astype(bool).tobytes())
    return digest.hexdigest()
