"""The embedding cache: a cached run encodes nothing and scores the same; keys never mix;
a corrupt chunk is ignored with a warning and rewritten."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from paraclip_pipeline.evaluation.public.embedding_cache import CacheableEncoder, EmbeddingCache
from paraclip_pipeline.evaluation.public.suite import run_public_benchmarks
from paraclip_pipeline_tests.evaluation.public.support import write_public_fixture
from paraclip_pipeline_tests.evaluation.support import HashingEncoder


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return write_public_fixture(tmp_path / "eval")


def _run(data_dir: Path, cache: EmbeddingCache, baseline: CacheableEncoder) -> list[dict]:
    return run_public_benchmarks(
        data_dir, HashingEncoder(seed=1), baseline, resamples=50, cache=cache
    )


def _chunks(cache: EmbeddingCache) -> list[Path]:
    return sorted(cache.root.rglob("*.parquet"))


def test_a_cached_run_encodes_no_baseline_text_and_gives_identical_numbers(
    data_dir: Path, tmp_path: Path
) -> None:
    cache = EmbeddingCache(tmp_path / "storage")
    first_encoder = HashingEncoder(seed=2)
    first = _run(data_dir, cache, CacheableEncoder(first_encoder, "baseline-a"))
    assert sum(first_encoder.text_calls) > 0
    assert [p.relative_to(tmp_path / "storage").parts[:2] for p in _chunks(cache)] == [
        ("cache", "embeddings")
    ]
    second_encoder = HashingEncoder(seed=2)
    second = _run(data_dir, cache, CacheableEncoder(second_encoder, "baseline-a"))
    assert sum(second_encoder.text_calls) == 0
    assert second == first
    assert len(_chunks(cache)) == 1  # nothing new to store


def test_only_new_texts_are_encoded_and_added(data_dir: Path, tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "storage")
    encoder = CacheableEncoder(HashingEncoder(seed=2), "baseline-a")
    cache.store(
        "baseline-a", {"a man riding a bike .": encoder.encode_text(["a man riding a bike ."])[0]}
    )
    counting = HashingEncoder(seed=2)
    _run(data_dir, cache, CacheableEncoder(counting, "baseline-a"))
    texts = {"a man riding a bike ."}
    assert sum(counting.text_calls) == len(_distinct_texts(data_dir) - texts)
    assert len(_chunks(cache)) == 2


def _distinct_texts(data_dir: Path) -> set[str]:
    from paraclip_pipeline.evaluation.public.benchmarks import load_benchmark_files

    return {text for item in load_benchmark_files(data_dir) for text in item.texts}


def test_a_different_key_never_reuses_entries(data_dir: Path, tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "storage")
    _run(data_dir, cache, CacheableEncoder(HashingEncoder(seed=2), "baseline-a"))
    other = HashingEncoder(seed=3)
    records = _run(data_dir, cache, CacheableEncoder(other, "baseline-b"))
    assert sum(other.text_calls) == len(_distinct_texts(data_dir))
    assert records == _run(
        data_dir, EmbeddingCache(tmp_path / "fresh"), CacheableEncoder(HashingEncoder(seed=3), "b")
    )
    assert len({p.parent for p in _chunks(cache)}) == 2
    # A chunk moved under another key's directory is refused by its recorded key.
    a_dir, b_dir = cache.directory("baseline-a"), cache.directory("baseline-b")
    for chunk in b_dir.glob("*.parquet"):
        chunk.unlink()
    for chunk in a_dir.glob("*.parquet"):
        (b_dir / chunk.name).write_bytes(chunk.read_bytes())
    assert cache.lookup("baseline-b", sorted(_distinct_texts(data_dir))) == {}


def test_an_undeclared_encoder_is_not_cached(data_dir: Path, tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "storage")
    run_public_benchmarks(
        data_dir, HashingEncoder(seed=1), HashingEncoder(seed=2), resamples=20, cache=cache
    )
    assert _chunks(cache) == []


@pytest.mark.parametrize("damage", ["garbage", "truncated", "not_normalised"])
def test_a_corrupt_chunk_is_ignored_with_a_warning_and_rewritten(
    data_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    cache = EmbeddingCache(tmp_path / "storage")
    first = _run(data_dir, cache, CacheableEncoder(HashingEncoder(seed=2), "baseline-a"))
    [chunk] = _chunks(cache)
    if damage == "garbage":
        chunk.write_bytes(b"PAR1 not parquet at all PAR1")
    elif damage == "truncated":
        chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])
    else:
        texts = sorted(_distinct_texts(data_dir))
        # Same texts, same chunk name: this overwrites the chunk with non-unit rows.
        cache.store("baseline-a", {text: np.full(48, 0.5, np.float32) for text in texts})
    counting = HashingEncoder(seed=2)
    with caplog.at_level(logging.WARNING):
        again = _run(data_dir, cache, CacheableEncoder(counting, "baseline-a"))
    assert again == first
    assert sum(counting.text_calls) == len(_distinct_texts(data_dir))
    assert f"ignoring {chunk}" in caplog.text
    [rewritten] = _chunks(cache)
    assert cache.lookup("baseline-a", sorted(_distinct_texts(data_dir))).keys() == _distinct_texts(
        data_dir
    )
    assert rewritten == chunk


def test_clip_cache_key_follows_the_text_weights() -> None:
    import torch

    from paraclip_pipeline.evaluation.public.models import clip_cache_key
    from paraclip_pipeline.modeling.factory import load_clip
    from paraclip_pipeline.modeling.profiles import get_profile

    clip = load_clip(get_profile("tiny-random"))
    key = clip_cache_key(clip)
    assert key == clip_cache_key(load_clip(get_profile("tiny-random")))
    model_id = clip.model_id
    with torch.no_grad():
        next(p for n, p in clip.model.named_parameters() if not n.startswith("visual.")).add_(1e-3)
    assert clip.model_id == model_id  # model_id digests the image tower only
    assert clip_cache_key(clip) != key
