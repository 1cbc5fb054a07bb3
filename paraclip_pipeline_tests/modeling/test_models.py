"""Profiles, offline model building, and the image-embedding cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from paraclip_pipeline import schema
from paraclip_pipeline.modeling.factory import load_clip
from paraclip_pipeline.modeling.image_embeddings import (
    ROW_GROUP_ROWS,
    ImageEmbeddingError,
    ImageEmbeddingStats,
    compute_image_embeddings,
    stream_image_embeddings,
)
from paraclip_pipeline.modeling.profiles import ProfileError, get_profile
from paraclip_pipeline.storage import table_fingerprint


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
    stats = ImageEmbeddingStats()
    table = compute_image_embeddings(rows, tiny_clip, stats, batch_size=2)
    assert table.schema.equals(schema.IMAGE_EMBEDDINGS_SCHEMA)
    assert table.column(schema.HAS_IMAGE).to_pylist() == [True, True, False, False, False]
    embeddings = table.column(schema.IMAGE_EMBEDDING).to_pylist()
    assert embeddings[0] == precomputed and embeddings[2] is None
    expected = tiny_clip.encode_images([Image.open(image_path)])[0]
    np.testing.assert_allclose(embeddings[1], expected, rtol=1e-5, atol=1e-6)
    assert table.column(schema.IMAGE_EMBEDDING_MODEL).to_pylist() == [
        tiny_clip.model_id,
        tiny_clip.model_id,
        None,
        None,
        None,
    ]
    assert (stats.rows, stats.precomputed, stats.computed, stats.without_image) == (5, 1, 1, 3)
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


def test_a_shard_streams_in_batches_into_small_row_groups(tiny_clip, tmp_path: Path) -> None:
    """Streamed batch by batch (what the asset does): the file equals the one-table result,
    its data version is that table's fingerprint, its row groups are small (training reads
    one at a time) and the stats add up over the batches."""
    dim = tiny_clip.embed_dim
    records = [
        {"id": f"c{i:05d}", "embedding": [float(i % 7)] * dim, "model": tiny_clip.model_id}
        if i % 3
        else {"id": f"c{i:05d}"}
        for i in range(ROW_GROUP_ROWS + 100)
    ]
    rows = _raw_rows(records)
    whole = compute_image_embeddings(rows, tiny_clip)
    target = tmp_path / "embeddings.parquet"
    data_version, stats = stream_image_embeddings(rows.to_batches(3000), tiny_clip, target)
    parquet = pq.ParquetFile(target)
    assert parquet.read().equals(whole) and data_version == table_fingerprint(whole)
    assert max(parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)) <= (
        ROW_GROUP_ROWS
    )
    assert (stats.rows, stats.precomputed, stats.without_image) == (
        len(records),
        len(records) - len(records[::3]),
        len(records[::3]),
    )
