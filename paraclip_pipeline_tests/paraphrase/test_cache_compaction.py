"""Compacted segments answer exactly what a full scan of the chunk files answers, and the
DuckDB lookup exactly what the earlier pyarrow scan did."""

from __future__ import annotations

from dataclasses import astuple
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from paraclip_pipeline.paraphrase import cache as cache_module
from paraclip_pipeline.paraphrase.cache import (
    CACHE_SCHEMA,
    HIT_COLUMNS,
    CachedAnswer,
    ParaphraseCache,
)
from paraclip_pipeline.paraphrase.errors import CacheCorruptError

IDENTITY = {"backend": "test", "model": "m"}


def _answer(text: str, answer: str) -> CachedAnswer:
    return CachedAnswer(
        paraphrase=answer.upper(),
        status="ok",
        hygiene_version="h1",
        prompt_tokens=len(text),
        completion_tokens=len(answer),
        input_text=text,
        answer=answer,
    )


def _fill(cache: ParaphraseCache, chunks: int, per_chunk: int) -> list[str]:
    texts = []
    for chunk in range(chunks):
        batch = {f"caption {chunk}-{i}": f"answer {chunk}-{i}" for i in range(per_chunk)}
        cache.commit({cache.key(text): _answer(text, a) for text, a in batch.items()})
        texts += list(batch)
    return texts


def test_lookups_through_segments_equal_the_full_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache_module, "COMPACT_AT_CHUNKS", 10**9)  # first, the full scan
    monkeypatch.setattr(cache_module, "MAX_SEGMENTS", 3)
    monkeypatch.setattr(cache_module, "MERGE_FANIN", 2)
    cache = ParaphraseCache(tmp_path / "a", IDENTITY)
    texts = _fill(cache, chunks=9, per_chunk=7)
    # The same text answered twice by two processes: the smallest raw answer wins everywhere.
    texts.append("one more caption")
    cache.commit(
        {
            cache.key(texts[0]): _answer(texts[0], "a different answer"),
            cache.key(texts[-1]): _answer(texts[-1], "one more answer"),
        }
    )
    keys = [cache.key(text) for text in [*texts, "never cached"]]
    full_scan = (cache.lookup(keys), cache.raw_answers(keys))
    assert len(full_scan[0]) == len(texts)
    assert full_scan[1][keys[0]] == "a different answer"
    scanned_rows = sum(pq.read_metadata(path).num_rows for path in cache.chunk_files())
    monkeypatch.setattr(cache_module, "COMPACT_AT_CHUNKS", 10)

    # Keep adding chunks so lookups compact, and segments merge, several times.
    for round_ in range(4):
        _fill(ParaphraseCache(tmp_path / "a", IDENTITY), chunks=10, per_chunk=1)
        extra = [cache.key(f"caption {c}-0") for c in range(10)]
        assert set(cache.lookup(extra)) == set(extra), round_
        assert (cache.lookup(keys), cache.raw_answers(keys)) == full_scan
        assert len(cache.chunk_files()) < 10 and len(cache.segment_files()) <= 3
    assert cache.segment_files() and scanned_rows == len(texts) + 1  # one key twice


def test_a_vanished_input_file_skips_compaction(tmp_path: Path) -> None:
    cache = ParaphraseCache(tmp_path / "b", IDENTITY)
    texts = _fill(cache, chunks=3, per_chunk=2)
    chunks = cache.chunk_files()
    chunks[0].unlink()  # another process's compaction removed it after we listed it
    assert cache._merge([chunks[0], *chunks[1:]]) is None
    assert cache.chunk_files() == chunks[1:]  # nothing deleted
    cache.compact(min_chunks=1)
    assert len(cache.lookup(cache.key(text) for text in texts)) == len(texts) - 2
    assert cache.chunk_files() == [] and len(cache.segment_files()) == 1


def _pyarrow_scan(cache: ParaphraseCache, keys: list[str]) -> dict[str, tuple[object, ...]]:
    """The lookup as it was before the DuckDB semi join: a pyarrow dataset scan with an
    ``isin`` filter over every file, the smallest raw answer winning a duplicated key."""
    files = cache.segment_files() + cache.chunk_files()
    found = ds.dataset(files, schema=CACHE_SCHEMA, format="parquet").to_table(
        filter=pc.field("key").isin(pa.array(keys))
    )
    rows = sorted(found.to_pylist(), key=lambda row: (row["key"], row["answer"]))
    best: dict[str, tuple[object, ...]] = {}
    for row in rows:
        best.setdefault(row["key"], (*(row[name] for name in HIT_COLUMNS), row["answer"]))
    return best


def test_the_duckdb_lookup_equals_the_pyarrow_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache_module, "COMPACT_AT_CHUNKS", 10**9)
    cache = ParaphraseCache(tmp_path / "c", IDENTITY)
    texts = _fill(cache, chunks=4, per_chunk=5)
    cache.compact(min_chunks=1)  # some answers in a segment, some in loose chunks
    for chunk in range(3):
        late = [f"late caption {chunk}-{i}" for i in range(4)]
        cache.commit({cache.key(text): _answer(text, f"answer to {text}") for text in late})
        texts += late
    twice = {cache.key(text): _answer(text, f"answer again {text}") for text in texts[::3]}
    cache.commit(twice)  # the same keys answered again, in a later chunk
    keys = [cache.key(text) for text in [*texts, "never cached", texts[0]]]

    expected = _pyarrow_scan(cache, keys)
    hits, raw = cache.lookup(keys), cache.raw_answers(iter(keys))
    assert len(cache.segment_files()) == 1 and len(expected) == len(texts)
    assert {key: (*astuple(hit), raw[key]) for key, hit in hits.items()} == expected
    assert any(raw[key].startswith("answer again") for key in twice)  # both orders of winner occur
    assert any(not raw[key].startswith("answer again") for key in twice)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_corrupt_chunk_is_a_clear_error_and_nothing_is_lost(tmp_path: Path, damage: str) -> None:
    cache = ParaphraseCache(tmp_path / "c", IDENTITY)
    texts = _fill(cache, chunks=3, per_chunk=2)
    good = cache.chunk_files()
    bad = cache.directory / "chunk-0000000000000000000000000000dead.parquet"
    data = good[0].read_bytes()
    bad.write_bytes(b"not a parquet file" if damage == "garbage" else data[: len(data) // 2])
    before = {path: path.read_bytes() for path in cache.chunk_files()}

    for attempt in (
        lambda: cache.compact(min_chunks=1),
        lambda: cache.lookup([cache.key(texts[0])]),
    ):
        with pytest.raises(CacheCorruptError, match=str(cache.directory)):
            attempt()
        # Every input file is kept as it was; no segment or temporary is left behind.
        assert {path: path.read_bytes() for path in cache.chunk_files()} == before
        assert cache.segment_files() == []
        assert sorted(p.name for p in cache.directory.glob(".*")) == []
