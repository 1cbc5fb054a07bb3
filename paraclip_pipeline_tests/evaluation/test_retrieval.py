"""Paraphrased retrieval (text-to-text and text-to-image) and zero-shot COCO retrieval."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from paraclip_pipeline import schema
from paraclip_pipeline.evaluation import coco, image_text_retrieval, paraphrase_retrieval
from paraclip_pipeline.evaluation.errors import BenchmarkDataError, EncoderOutputError
from paraclip_pipeline_tests.evaluation.support import COCO_CAPTIONS, HashingEncoder

HELDOUT = pa.table(
    {
        schema.TEXT: [
            "a dog runs on the beach",
            "two cats sleep on a sofa",
            "a red car parked on the street",
            "a man rides a horse in a field",
        ],
        schema.PARAPHRASE_1: [
            "a dog running along the beach",
            "two cats sleeping on a couch",
            "a red automobile parked on a street",
            "a man riding a horse through a field",
        ],
        schema.PARAPHRASE_2: [
            "canine sprinting across sand",
            "pair of felines napping on furniture",
            "crimson vehicle stationed roadside",
            "rider atop steed crossing meadow",
        ],
    }
)


class ParaphraseBlindEncoder(HashingEncoder):
    """Embeds every paraphrase exactly like its original: perfect rank similarity."""

    def encode_text(self, texts, batch_size=256):  # type: ignore[no-untyped-def]
        originals = {
            paraphrase: original
            for column in (schema.PARAPHRASE_1, schema.PARAPHRASE_2)
            for original, paraphrase in zip(
                HELDOUT[schema.TEXT].to_pylist(), HELDOUT[column].to_pylist(), strict=True
            )
        }
        return super().encode_text([originals.get(text, text) for text in texts])


def test_heldout_rank_similarity_matches_a_direct_computation() -> None:
    encoder = HashingEncoder(seed=4)
    result = paraphrase_retrieval.evaluate_heldout_rank_similarity(encoder, HELDOUT, [2, 3])
    gallery = encoder.encode_text(HELDOUT[schema.TEXT].to_pylist())
    original = gallery
    paraphrased = encoder.encode_text(HELDOUT[schema.PARAPHRASE_1].to_pylist())
    for k in (2, 3):
        a = np.argsort(-(original @ gallery.T), axis=1, kind="stable")[:, :k]
        b = np.argsort(-(paraphrased @ gallery.T), axis=1, kind="stable")[:, :k]
        jaccard = [len(set(x) & set(y)) / len(set(x) | set(y)) for x, y in zip(a, b, strict=True)]
        overlap = [
            np.mean([len(set(x[:d]) & set(y[:d])) / d for d in range(1, k + 1)])
            for x, y in zip(a, b, strict=True)
        ]
        assert result.scores["T vs T'"][f"JS@{k}"] == pytest.approx(np.mean(jaccard))
        assert result.scores["T vs T'"][f"AO@{k}"] == pytest.approx(np.mean(overlap))
    assert set(result.scores) == {"T vs T'", "T vs T''"}
    assert len(result.distributions["T vs T'' AO@2"]) == HELDOUT.num_rows
    assert result.headline_stems["AO@3"] == "ao3"
    # Each distinct text is encoded once, in one call.
    assert encoder.text_calls[0] == 12


def test_paraphrase_blind_encoder_scores_one_and_gallery_caps_k() -> None:
    result = paraphrase_retrieval.evaluate_heldout_rank_similarity(
        ParaphraseBlindEncoder(), HELDOUT, [10]
    )
    assert result.averages == pytest.approx({"AO@10": 1.0, "JS@10": 1.0})
    assert result.notes == ["gallery holds 4 items, so k=10 is scored as k=4"]


def test_heldout_null_value_names_row_and_column() -> None:
    broken = HELDOUT.set_column(
        2, schema.PARAPHRASE_2, pa.array(["x", None, "y", "z"], type=pa.string())
    )
    with pytest.raises(BenchmarkDataError, match=r"heldout_pairs, row 1, column 'paraphrase_2'"):
        paraphrase_retrieval.evaluate_heldout_rank_similarity(HashingEncoder(), broken, [2])


def test_heldout_absent_without_pairs() -> None:
    result = paraphrase_retrieval.evaluate_heldout_rank_similarity(HashingEncoder(), None, [10])
    assert result.status == "absent"


def test_karpathy_loader_keeps_only_the_split(coco_dir: Path) -> None:
    images = coco.load_karpathy_split(coco_dir / "dataset_coco.json", coco_dir, "test")
    assert [image.cocoid for image in images] == [100, 101, 102, 103]
    assert images[1].path == coco_dir / "val2014" / "coffee.png"
    assert images[2].captions == tuple(COCO_CAPTIONS["chelsea.png"])


def test_zero_shot_recall_by_hand(coco_dir: Path) -> None:
    images = coco.load_karpathy_split(coco_dir / "dataset_coco.json", coco_dir, "test")
    encoder = HashingEncoder(seed=2)
    # Gallery embeddings chosen so that each image is the text embedding of its first
    # caption: text->image ranks are then easy to derive from text-text similarities.
    gallery = encoder.encode_text([image.captions[0] for image in images])
    result = image_text_retrieval.evaluate_zero_shot_retrieval(encoder, images, gallery)
    captions = [caption for image in images for caption in image.captions]
    owner = np.repeat(np.arange(len(images)), 3)
    similarities = encoder.encode_text(captions) @ gallery.T
    t2i_ranks = [
        int(((row >= row[own]) & (np.arange(len(images)) != own)).sum())
        for row, own in zip(similarities, owner, strict=True)
    ]
    scores = result.scores[image_text_retrieval.TASK]
    for k in (1, 5, 10):
        assert scores[f"t2i R@{k}"] == pytest.approx(np.mean(np.array(t2i_ranks) < k))
    # Each image's first caption is identical to it: image->text R@1 is perfect.
    assert scores["i2t R@1"] == 1.0
    assert scores["t2i R@5"] == 1.0  # only 4 images
    assert result.counts[image_text_retrieval.TASK] == 12


def test_coco_rank_similarity_on_images(coco_dir: Path) -> None:
    images = coco.load_karpathy_split(coco_dir / "dataset_coco.json", coco_dir, "test")
    encoder = HashingEncoder()
    gallery = coco.embed_images(encoder, images, batch_size=2)
    queries = coco.load_paraphrased_queries(coco_dir / "paraphrased_queries.jsonl")
    result = paraphrase_retrieval.evaluate_coco_rank_similarity(
        encoder,
        [query.original for query in queries],
        [query.paraphrase for query in queries],
        gallery,
        [2, 4],
    )
    # With k equal to the gallery size, both lists hold every image: JS is 1.
    assert result.scores["caption vs paraphrase"]["JS@4"] == 1.0
    assert 0.0 <= result.scores["caption vs paraphrase"]["AO@2"] <= 1.0
    assert result.headline_stems["AO@2"] == "coco_ao2"


def test_precomputed_image_embeddings_are_matched_by_cocoid(coco_dir: Path) -> None:
    images = coco.load_karpathy_split(coco_dir / "dataset_coco.json", coco_dir, "test")
    encoder = HashingEncoder()
    computed = coco.embed_images(encoder, images, batch_size=4)
    path = coco_dir / "image_embeddings.npz"
    np.savez(path, cocoid=np.array([103, 102, 101, 100]), embedding=computed[::-1])
    np.testing.assert_allclose(coco.embed_images(encoder, images, 4, path), computed)
    np.savez(path, cocoid=np.array([100]), embedding=computed[:1])
    with pytest.raises(BenchmarkDataError, match="no embedding for 3 image"):
        coco.embed_images(encoder, images, 4, path)


def test_paraphrase_file_errors_name_the_record(tmp_path: Path) -> None:
    path = tmp_path / "queries.json"
    path.write_text(json.dumps([{"caption": "a cat", "paraphrase": "a feline"}, {"caption": "x"}]))
    with pytest.raises(BenchmarkDataError, match=r"column 'paraphrase': record 2"):
        coco.load_paraphrased_queries(path)


def test_unnormalised_encoder_output_is_rejected() -> None:
    class Unnormalised(HashingEncoder):
        def encode_text(self, texts, batch_size=256):  # type: ignore[no-untyped-def]
            return super().encode_text(texts) * 3.0

    with pytest.raises(EncoderOutputError, match="L2 norm"):
        paraphrase_retrieval.evaluate_heldout_rank_similarity(Unnormalised(), HELDOUT, [2])
