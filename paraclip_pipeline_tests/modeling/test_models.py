"""Profiles, offline model building, and the image-embedding cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from paraclip_pipeline import schema
from paraclip_pipeline.modeling.factory import load_clip
from paraclip_pipeline.modeling.image_embeddings import (
    ImageEmbeddingError,
    compute_image_embeddings,
    image_embedding_stats,
)
from paraclip_pipeline.modeling.profiles import ProfileError, get_profile


@pytest.fixture(scope="module")
def tiny_clip():
    return load_clip(get_profile("tiny-random"))


def _raw_rows(records: list[dict]) -> pa.Table:
    full = [
        {
            schema.CAPTION_ID: record["id"],
            schema.SHARD: "s0",
            schema.SOURCE_ROW: index,
            schema.TEXT: "a caption",
            schema.IMAGE_PATH: record.get("path"),
            schema.IMAGE_EMBEDDING: record.get("embedding"),
            schema.IMAGE_EMBEDDING_MODEL: record.get("model"),
        }
        for index, record in enumerate(records)
    ]
    return pa.Table.from_pylist(full, schema=schema.RAW_CAPTIONS_SCHEMA)


def test_offline_minilm_builds_offline_and_encodes_text() -> None:
    clip = load_clip(get_profile("offline-minilm"))
    vectors = clip.encode_text(["a dog on the grass", "a dog on grass", "stock market report"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    # The pretrained text encoder already ranks the near-paraphrase closest.
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


def test_model_id_is_stable_across_builds(tiny_clip) -> None:
    assert load_clip(get_profile("tiny-random")).model_id == tiny_clip.model_id


def test_unknown_profile_is_named() -> None:
    with pytest.raises(ProfileError, match="no-such-profile"):
        get_profile("no-such-profile")


def test_image_rows_precomputed_computed_missing_and_unreadable(tiny_clip, tmp_path: Path) -> None:
    image_path = tmp_path / "red.png"
    Image.new("RGB", (40, 30), (200, 10, 10)).save(image_path)
    broken_path = tmp_path / "broken.jpg"
    broken_path.write_bytes(b"not an image")
    precomputed = [1.0] + [0.0] * (tiny_clip.embed_dim - 1)
    rows = _raw_rows(
        [
            {"id": "pre", "embedding": precomputed, "model": tiny_clip.model_id},
            {"id": "file", "path": str(image_path)},
            {"id": "none"},
            {"id": "broken", "path": str(broken_path)},
            {"id": "gone", "path": str(tmp_path / "missing.png")},
        ]
    )
    table = compute_image_embeddings(rows, tiny_clip, batch_size=2)
    assert table.schema.equals(schema.IMAGE_EMBEDDINGS_SCHEMA)
    assert table.column(schema.HAS_IMAGE).to_pylist() == [True, True, False, False, False]
    embeddings = table.column(schema.IMAGE_EMBEDDING).to_pylist()
    assert embeddings[0] == precomputed and embeddings[2] is None
    expected = tiny_clip.encode_images([Image.open(image_path)])[0]
    np.testing.assert_allclose(embeddings[1], expected, rtol=1e-5, atol=1e-6)
    stats = image_embedding_stats(table)
    assert (stats.precomputed, stats.computed, stats.without_image) == (1, 1, 3)
    assert stats.unreadable_images == 2 and set(stats.unreadable) == {"broken", "gone"}


def test_precomputed_embedding_of_another_model_is_refused(tiny_clip) -> None:
    rows = _raw_rows(
        [{"id": "x7", "embedding": [0.0] * tiny_clip.embed_dim, "model": "ViT-L-14:openai"}]
    )
    with pytest.raises(ImageEmbeddingError, match=r"caption_id='x7'.*image_embedding_model"):
        compute_image_embeddings(rows, tiny_clip)


def test_precomputed_embedding_of_wrong_dimension_is_refused(tiny_clip) -> None:
    rows = _raw_rows([{"id": "x8", "embedding": [0.0, 1.0], "model": tiny_clip.model_id}])
    with pytest.raises(ImageEmbeddingError, match=r"caption_id='x8'.*has 2 values"):
        compute_image_embeddings(rows, tiny_clip)
