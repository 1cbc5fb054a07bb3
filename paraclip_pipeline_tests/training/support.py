"""Small synthetic pairs + image embeddings for the tiny-random profile."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from paraclip_pipeline import schema

WORDS = [
    "red",
    "blue",
    "green",
    "dog",
    "cat",
    "bird",
    "car",
    "tree",
    "house",
    "river",
    "sky",
    "boat",
    "small",
    "big",
    "old",
    "new",
]


def make_pairs(rows: int, heldout: int = 2) -> pa.Table:
    rng = np.random.default_rng(7)
    captions = [" ".join(rng.choice(WORDS, size=5)) for _ in range(rows + heldout)]
    return pa.Table.from_pylist(
        [
            {
                schema.CAPTION_ID: f"c{index:03d}",
                schema.SHARD: "s0",
                schema.TEXT: caption,
                schema.PARAPHRASE_1: f"a photo of {caption}",
                schema.PARAPHRASE_2: f"picture showing {caption[::-1]}",
                schema.SPLIT: schema.TRAIN if index < rows else schema.TEST,
            }
            for index, caption in enumerate(captions)
        ],
        schema=schema.FILTERED_PAIRS_SCHEMA,
    )


def make_embeddings(pairs: pa.Table, model_id: str, dim: int, without_image: int = 3) -> pa.Table:
    rng = np.random.default_rng(11)
    records = []
    for index, caption_id in enumerate(pairs.column(schema.CAPTION_ID).to_pylist()):
        has_image = index >= without_image
        vector = rng.standard_normal(dim).astype(np.float32)
        records.append(
            {
                schema.CAPTION_ID: caption_id,
                schema.HAS_IMAGE: has_image,
                schema.IMAGE_EMBEDDING: (vector / np.linalg.norm(vector)).tolist()
                if has_image
                else None,
                schema.IMAGE_EMBEDDING_MODEL: model_id if has_image else None,
            }
        )
    return pa.Table.from_pylist(records, schema=schema.IMAGE_EMBEDDINGS_SCHEMA)
