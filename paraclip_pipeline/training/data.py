"""Training data: the train split joined with its image embeddings, and how it is batched.

The rows are sorted by caption_id and the order of epoch ``e`` is a pure function of
``(seed, e)``, so a resumed run, or a run on N processes, sees exactly the same batches.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import torch

from paraclip_pipeline import schema
from paraclip_pipeline.filtering.features import normalised_text
from paraclip_pipeline.modeling.factory import LoadedClip
from paraclip_pipeline.training.config import TrainConfig


class TrainingDataError(ValueError):
    """Training input (pairs or image embeddings) that cannot be trained on as it is."""


@dataclass(frozen=True)
class TrainingData:
    """Train-split rows, sorted by caption_id, with image embeddings aligned to them."""

    caption_ids: list[str]
    captions: list[str]
    paraphrases1: list[str]
    paraphrases2: list[str]
    image_embeddings: np.ndarray  # (rows, dim) float32; zero rows where there is no image
    has_image: np.ndarray  # (rows,) bool
    image_embedding_models: frozenset[str]
    rows_without_embedding_row: int
    # Train rows dropped because a smaller caption_id had the same normalised caption.
    duplicate_captions_dropped: int = 0

    def __len__(self) -> int:
        return len(self.caption_ids)

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for column in (self.caption_ids, self.captions, self.paraphrases1, self.paraphrases2):
            digest.update(json.dumps(column).encode())
        digest.update(self.image_embeddings.tobytes())
        digest.update(self.has_image.tobytes())
        return digest.hexdigest()


def _require_columns(table: pa.Table, expected: pa.Schema, what: str) -> None:
    missing = [name for name in expected.names if name not in table.column_names]
    if missing:
        raise TrainingDataError(f"{what} lacks columns {missing}; it has {table.column_names}")


def _first_caption_id(table: pa.Table, mask: pa.ChunkedArray) -> str:
    return str(table.filter(mask).column(schema.CAPTION_ID)[0])


def _embedding_matrix(joined: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    has_image = pc.fill_null(joined.column(schema.HAS_IMAGE), False)
    embeddings = joined.column(schema.IMAGE_EMBEDDING)
    missing = pc.and_(has_image, pc.is_null(embeddings))
    if pc.any(missing).as_py():
        raise TrainingDataError(
            f"image_embeddings row caption_id={_first_caption_id(joined, missing)!r} has "
            f"{schema.HAS_IMAGE}=true but a null {schema.IMAGE_EMBEDDING}"
        )
    mask = has_image.to_numpy(zero_copy_only=False).astype(bool)
    with_image = embeddings.filter(has_image)
    lengths = pc.list_value_length(with_image).to_numpy(zero_copy_only=False)
    dim = int(lengths[0]) if len(lengths) else 0
    if len(lengths) and (lengths != dim).any():
        bad = joined.filter(has_image).column(schema.CAPTION_ID)[int(np.argmax(lengths != dim))]
        raise TrainingDataError(
            f"image_embeddings row caption_id={bad} has a {schema.IMAGE_EMBEDDING} of length "
            f"{int(lengths[np.argmax(lengths != dim)])}, other rows have {dim}"
        )
    matrix = np.zeros((len(joined), dim), np.float32)
    if dim:
        flat = pc.list_flatten(with_image).to_numpy(zero_copy_only=False)
        matrix[mask] = flat.astype(np.float32).reshape(-1, dim)
    return matrix, mask


def _one_row_per_caption(train: pa.Table) -> pa.Table:
    """The row with the smallest caption_id of each normalised caption (input sorted by id).

    Filtering dedups within one shard; the same caption in two shards (template captions,
    re-crawled images) would otherwise be trained on twice and, as a positive pair in one
    batch, be scored as a negative of itself.
    """
    normalised = "__normalised"
    frame = pl.from_arrow(train)
    assert isinstance(frame, pl.DataFrame)
    unique = (
        frame.with_columns(normalised_text(pl.col(schema.TEXT)).alias(normalised))
        .unique(subset=normalised, keep="first", maintain_order=True)
        .drop(normalised)
    )
    return unique.to_arrow().cast(train.schema)


def prepare_training_data(pairs: pa.Table, image_embeddings: pa.Table) -> TrainingData:
    """Keep ``split == "train"``, one row per normalised caption across all shards (the
    smallest caption_id), join image embeddings by caption_id, sort by caption_id.

    A pair with no image-embedding row at all trains without an image (L2, L3 only).
    """
    _require_columns(pairs, schema.FILTERED_PAIRS_SCHEMA, "filtered pairs")
    _require_columns(image_embeddings, schema.IMAGE_EMBEDDINGS_SCHEMA, "image embeddings")
    train = pairs.filter(pc.equal(pairs.column(schema.SPLIT), schema.TRAIN)).select(
        [schema.CAPTION_ID, schema.TEXT, schema.PARAPHRASE_1, schema.PARAPHRASE_2]
    )
    for column in train.column_names:
        nulls = pc.is_null(train.column(column))
        if pc.any(nulls).as_py():
            row = train.filter(nulls)
            raise TrainingDataError(
                f"filtered pairs: column {column!r} is null in a train row "
                f"(caption_id={row.column(schema.CAPTION_ID)[0]})"
            )
    for table, what in ((train, "filtered pairs"), (image_embeddings, "image embeddings")):
        ids = table.column(schema.CAPTION_ID)
        if pc.count_distinct(ids).as_py() != len(ids):
            counts = pc.value_counts(ids)
            duplicate = counts.filter(pc.greater(counts.field("counts"), 1))[0]["values"]
            raise TrainingDataError(f"{what}: caption_id {duplicate} appears more than once")
    train = train.sort_by(schema.CAPTION_ID)
    deduplicated = _one_row_per_caption(train)
    duplicates_dropped = len(train) - len(deduplicated)
    train = deduplicated
    # A take by position instead of Table.join: Acero cannot carry list columns through a join.
    positions = pc.index_in(
        train.column(schema.CAPTION_ID), value_set=image_embeddings.column(schema.CAPTION_ID)
    )
    joined = train
    for column in (schema.HAS_IMAGE, schema.IMAGE_EMBEDDING, schema.IMAGE_EMBEDDING_MODEL):
        joined = joined.append_column(column, image_embeddings.column(column).take(positions))
    matrix, has_image = _embedding_matrix(joined)
    models = joined.filter(pc.fill_null(joined.column(schema.HAS_IMAGE), False)).column(
        schema.IMAGE_EMBEDDING_MODEL
    )
    return TrainingData(
        caption_ids=joined.column(schema.CAPTION_ID).to_pylist(),
        captions=joined.column(schema.TEXT).to_pylist(),
        paraphrases1=joined.column(schema.PARAPHRASE_1).to_pylist(),
        paraphrases2=joined.column(schema.PARAPHRASE_2).to_pylist(),
        image_embeddings=matrix,
        has_image=has_image,
        image_embedding_models=frozenset(models.unique().to_pylist()),
        rows_without_embedding_row=int(pc.sum(pc.is_null(joined.column(schema.HAS_IMAGE))).as_py()),
        duplicate_captions_dropped=duplicates_dropped,
    )


def check_image_embeddings(data: TrainingData, clip: LoadedClip) -> None:
    """Refuse embeddings from another image tower, or of another width, before training."""
    foreign = sorted(m for m in data.image_embedding_models if not clip.accepts_image_model(m))
    if foreign:
        raise TrainingDataError(
            f"image embeddings were made by {foreign}, but the model being trained has image "
            f"tower {clip.model_id!r}; recompute image_embeddings with this profile"
        )
    dim = data.image_embeddings.shape[1]
    if data.has_image.any() and dim != clip.embed_dim:
        raise TrainingDataError(
            f"image embeddings have dimension {dim}, the model's embed_dim is {clip.embed_dim}"
        )


def epoch_order(rows: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(rows)


def tokenize(clip: LoadedClip, texts: list[str], batch_size: int = 1024) -> torch.Tensor:
    # Tokenised once up front; int32 halves the memory of the cached token ids.
    parts = [
        clip.tokenizer(texts[start : start + batch_size]).to(torch.int32)
        for start in range(0, len(texts), batch_size)
    ]
    return torch.cat(parts)


def micro_batch_size(rows: int, config: TrainConfig, world_size: int) -> int:
    """The configured batch, shrunk (to a multiple of the ranks) when there are fewer rows."""
    per_step = config.batch_size * config.grad_accum_steps
    if rows >= per_step:
        return config.batch_size
    micro = (rows // config.grad_accum_steps) // world_size * world_size
    if micro < 2:
        raise TrainingDataError(
            f"{rows} train rows are too few for a contrastive batch of at least 2 "
            f"with grad_accum_steps={config.grad_accum_steps} on {world_size} process(es)"
        )
    return micro
