"""Bounded-memory cache reads: key-range lookups and the streaming merge give the same
answers as one query over everything (issue 14)."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from paraclip_pipeline import hex_ranges
from paraclip_pipeline.paraphrase import cache as cache_module
from paraclip_pipeline.paraphrase import cache_files, cache_lookup
from paraclip_pipeline.paraphrase.cache import CachedAnswer, ParaphraseCache
from paraclip_pipeline.paraphrase.cache_lookup import key_ranges
from paraclip_pipeline.paraphrase.shard_lookup import PositionsWriter
from paraclip_pipeline.paraphrase.sorted_merge import merge_sorted

IDENTITY = {"backend": "test", "model": "ranges"}


def test_merge_sorted_equals_a_sort_and_keeps_each_value_in_one_table() -> None:
    rng = random.Random(0)
    for trial in range(200):
        inputs, rows = [], []
        for run in range(rng.randint(1, 6)):
            values = sorted(rng.randint(0, 30) for _ in range(rng.randint(0, 40)))
            run_rows = [(value, f"{run}-{index}") for index, value in enumerate(values)]
            rows += run_rows
            tables, at = [], 0
            while at < len(run_rows):  # uneven batches, empty ones too
                part, at = run_rows[at : at + (size := rng.randint(0, 7))], at + size
                tables.append(pa.table({"v": [r[0] for r in part], "t": [r[1] for r in part]}))
            inputs.append(tables)
        merged = list(merge_sorted(inputs, [("v", "ascending"), ("t", "ascending")]))
        assert [(r["v"], r["t"]) for t in merged for r in t.to_pylist()] == sorted(rows), trial
        owners = [set(table.column("v").to_pylist()) for table in merged]
        assert sum(len(values) for values in owners) == len(set().union(*owners)), trial


def test_key_ranges_split_the_key_space_by_size() -> None:
    assert key_ranges(10) == [("", "~")]
    ranges = key_ranges(5 * cache_lookup.BUCKET_KEYS)
    assert len(ranges) == 8 and ranges[0] == ("", "200") and ranges[-1] == ("e00", "~")
    assert all(high == low for (_, high), (low, _) in itertools.pairwise(ranges))
    assert len(key_ranges(10**12)) == hex_ranges.PREFIX_SPACE


def _answer(text: str, raw: str, version: str = "v1") -> CachedAnswer:
    return CachedAnswer(raw.upper(), "ok", version, len(text), len(raw), text, raw)


def _filled_cache(root: Path) -> tuple[ParaphraseCache, list[str]]:
    """Answers in a segment and in loose chunks, some keys twice, an older hygiene version."""
    cache = ParaphraseCache(root, IDENTITY)
    texts = [f"caption {number}" for number in range(120)]
    for start in range(0, 60, 20):
        batch = texts[start : start + 20]
        cache.commit(
            {cache.key(t): _answer(t, f"answer {t}", "v0" if start else "v1") for t in batch}
        )
    cache.compact(min_chunks=1)
    cache.commit({cache.key(t): _answer(t, f"again {t}") for t in texts[50:90]})  # 50-59 twice
    return cache, texts


def test_lookups_by_key_range_equal_one_query(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache, texts = _filled_cache(tmp_path / "cache")
    rng = random.Random(1)
    shard = [rng.choice([*texts, "never cached"]) for _ in range(300)]
    positions = tmp_path / "positions.parquet"
    writer = PositionsWriter(positions)
    writer.write([None if index % 11 == 0 else text for index, text in enumerate(shard)])
    writer.close()
    keys = [cache.key(text) for text in texts]

    def both() -> tuple[pa.Table, dict[str, object], dict[str, str]]:
        cache.lookup_shard(positions, (40, 290), tmp_path / "hits.parquet", "v1")
        return pq.read_table(tmp_path / "hits.parquet"), cache.lookup(keys), cache.raw_answers(keys)

    monkeypatch.setattr(cache_lookup, "BUCKET_KEYS", 10**9)
    whole = both()
    monkeypatch.setattr(cache_lookup, "BUCKET_KEYS", 4)  # dozens of ranges
    ranged = both()
    assert ranged[0].equals(whole[0]) and ranged[1:] == whole[1:]
    assert whole[0].num_rows == sum(1 for i in range(40, 290) if i % 11) and len(whole[1]) == 90
    assert whole[2][keys[55]] == "again caption 55"  # the smaller raw answer of two


def test_compaction_is_deterministic_and_triggered_by_loose_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache_files, "SEGMENT_ROW_GROUP", 7)  # many row groups, re-cut
    segments = []
    for copy in ("a", "b"):  # two processes compacting the same files
        cache, _ = _filled_cache(tmp_path / copy)
        cache.compact(min_chunks=1)
        segments.append({path.name: path.read_bytes() for path in cache.segment_files()})
        groups = pq.ParquetFile(cache.segment_files()[0]).metadata
        assert {groups.row_group(i).num_rows for i in range(groups.num_row_groups - 1)} == {7}
    assert segments[0] == segments[1] and len(segments[0]) == 2

    cache = ParaphraseCache(tmp_path / "c", IDENTITY)
    for text in ("one", "two", "three"):
        cache.commit({cache.key(text): _answer(text, text)})
    loose = sum(path.stat().st_size for path in cache.chunk_files())
    monkeypatch.setattr(cache_module, "COMPACT_AT_BYTES", loose)  # 3 chunks, far below 256
    assert len(cache.lookup([cache.key("two")])) == 1
    assert cache.chunk_files() == [] and len(cache.segment_files()) == 1


def test_loose_chunks_merge_in_bounded_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However many chunks piled up, each merge reads at most ``COMPACT_AT_CHUNKS`` of
    them; the segments then merge, streamed, down to ``MAX_SEGMENTS``."""
    monkeypatch.setattr(cache_module, "COMPACT_AT_CHUNKS", 3)
    monkeypatch.setattr(cache_module, "MAX_SEGMENTS", 2)
    merged: list[int] = []
    write = cache_module.write_segment
    monkeypatch.setattr(
        cache_module,
        "write_segment",
        lambda files, target: (merged.append(len(files)), write(files, target)),
    )
    cache = ParaphraseCache(tmp_path / "cache", IDENTITY)
    texts = [f"caption {number}" for number in range(10)]
    for text in texts:
        cache.commit({cache.key(text): _answer(text, f"answer {text}")})
    cache.compact(min_chunks=1)
    assert merged[:4] == [3, 3, 3, 1] and cache.chunk_files() == []
    assert len(cache.segment_files()) <= 2
    assert len(cache.lookup([cache.key(text) for text in texts])) == 10
