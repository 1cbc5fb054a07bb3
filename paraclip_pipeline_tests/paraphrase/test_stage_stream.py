"""StageRun fed batch by batch equals one whole-table run (issue 14)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from paraclip_pipeline.paraphrase import shard_lookup
from paraclip_pipeline.paraphrase.cache import CachedAnswer, ParaphraseCache
from paraclip_pipeline.paraphrase.cache_files import KEY
from paraclip_pipeline.paraphrase.cache_lookup import FOUND, LAST_POSITION, POSITION, STALE_ANSWER
from paraclip_pipeline.paraphrase.engine import StageRun, StageStats, run_paraphrase_stage
from paraclip_pipeline.paraphrase.shard_lookup import PositionsWriter
from paraclip_pipeline_tests.paraphrase.builders import stage1_rows
from paraclip_pipeline_tests.paraphrase.test_engine import CONFIG, RecordingBackend

# Repeats across batch boundaries and a blank caption (skipped, never sent).
TEXTS = [f"caption number {index % 7}" for index in range(17)] + ["   "]


def _streamed(rows: pa.Table, stage: int, cache: Path, batch_rows: int) -> tuple[pa.Table, int]:
    backend = RecordingBackend(CONFIG)
    with StageRun(stage=stage, config=CONFIG, cache_dir=cache, backend=backend) as run:  # type: ignore[arg-type]
        parts = [
            run.process(rows.slice(start, batch_rows)) for start in range(0, len(rows), batch_rows)
        ]
        stats = run.stats()
    assert stats.rows == len(rows)
    return pa.concat_tables(parts).combine_chunks(), backend.calls


def test_batches_give_the_whole_table_result_and_call_each_text_once(tmp_path: Path) -> None:
    rows = stage1_rows(TEXTS, [None] * (len(TEXTS) - 1) + ["empty"])
    whole = run_paraphrase_stage(
        rows, stage=1, config=CONFIG, cache_dir=tmp_path / "whole", backend=RecordingBackend(CONFIG)
    ).table
    whole2 = run_paraphrase_stage(
        whole,
        stage=2,
        config=CONFIG,
        cache_dir=tmp_path / "whole",
        backend=RecordingBackend(CONFIG),
    ).table
    for batch_rows in (1, 4, 5):
        cache = tmp_path / f"batches-{batch_rows}"
        stage1, calls = _streamed(rows, 1, cache, batch_rows)
        assert stage1.equals(whole)
        assert calls == 7  # a text repeated in a later batch is a cache hit
        stage2, _ = _streamed(stage1, 2, cache, batch_rows)
        assert stage2.equals(whole2)


def _shard_run(
    rows: pa.Table, stage: int, cache: Path, batch_rows: int, whole_shard: bool
) -> tuple[pa.Table, StageStats]:
    """The stage asset's two paths: a lookup per batch, or one for the shard."""
    backend = RecordingBackend(CONFIG)
    with StageRun(stage=stage, config=CONFIG, cache_dir=cache, backend=backend) as run:  # type: ignore[arg-type]
        if whole_shard:
            parts = list(run.process_shard(lambda: rows.to_batches(max_chunksize=batch_rows)))
        else:
            parts = [run.process(pa.Table.from_batches([b])) for b in rows.to_batches(batch_rows)]
        stats = run.stats()
    return pa.concat_tables(parts).combine_chunks(), stats


@pytest.fixture
def count_scans(monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """How many times the cache's files were read since the last call."""
    scans = [0]
    query = ParaphraseCache._query

    def counted(self: ParaphraseCache, run: Callable[..., object]) -> object:
        scans[0] += 1
        return query(self, run)

    monkeypatch.setattr(ParaphraseCache, "_query", counted)

    def taken() -> int:
        count, scans[0] = scans[0], 0
        return count

    return taken


def test_one_lookup_per_shard_gives_the_per_batch_output(
    tmp_path: Path, count_scans: Callable[[], int]
) -> None:
    rows = stage1_rows(TEXTS, [None] * (len(TEXTS) - 1) + ["empty"])
    warm = tmp_path / "warm"  # two texts cached, one of them under older hygiene rules
    run_paraphrase_stage(
        stage1_rows(TEXTS[:1]),
        stage=1,
        config=CONFIG,
        cache_dir=warm,
        backend=RecordingBackend(CONFIG),
    )
    old = ParaphraseCache(warm, RecordingBackend(CONFIG).cache_identity(1))
    text = TEXTS[3]
    old.commit(
        {old.key(text): CachedAnswer("stale", "ok", "0-old", 1, 1, text, f"reworded {text}")}
    )
    for batch_rows in (1, 4, 5, 64):
        outputs = []
        for whole_shard in (False, True):
            cache = tmp_path / f"{batch_rows}-{whole_shard}"
            shutil.copytree(warm, cache)
            count_scans()
            stage1, stats1 = _shard_run(rows, 1, cache, batch_rows, whole_shard)
            scans1 = count_scans()
            stage2, stats2 = _shard_run(stage1, 2, cache, batch_rows, whole_shard)
            outputs.append((stage1, stage2, stats1.calls, stats1.cache_hits, stats2.calls))
            # Per batch: a lookup where a row has text, another for the stale row's raw answer.
            parts = [TEXTS[at : at + batch_rows] for at in range(0, len(TEXTS), batch_rows)]
            expected = sum(any(t.strip() for t in part) + (text in part) for part in parts)
            assert scans1 == (1 if whole_shard else expected)
        (per_batch, shard) = outputs
        assert shard[0].equals(per_batch[0]) and shard[1].equals(per_batch[1])
        assert shard[2:] == per_batch[2:]
        assert shard[2] == 5  # 7 texts, 2 cached; a repeat in a later batch is not re-asked
    assert "stale" not in shard[0].column("paraphrase_1").to_pylist()  # re-cleaned


def test_a_shard_over_the_slice_is_looked_up_a_slice_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count_scans: Callable[[], int]
) -> None:
    """Slices of 5 rows: a repeat in a later slice is found in the cache this run wrote."""
    monkeypatch.setattr(shard_lookup, "LOOKUP_SLICE_ROWS", 5)
    rows = stage1_rows(TEXTS, [None] * (len(TEXTS) - 1) + ["empty"])
    per_batch, per_batch_stats = _shard_run(rows, 1, tmp_path / "batches", 2, False)
    count_scans()
    sliced, sliced_stats = _shard_run(rows, 1, tmp_path / "slices", 2, True)
    # A slice starts with the batch that runs past the last one: rows 0, 4, 8, 12, 16 on.
    assert count_scans() == 5
    assert sliced.equals(per_batch)
    assert (sliced_stats.calls, sliced_stats.cache_hits) == (7, len(TEXTS) - 1 - 7)
    assert (per_batch_stats.calls, per_batch_stats.cache_hits) == (7, len(TEXTS) - 1 - 7)


def test_shard_lookup_keys_are_the_cache_keys(tmp_path: Path) -> None:
    """DuckDB's key of a text (``KEY_SQL``) is ``ParaphraseCache.key``, so a committed
    answer is found; on an empty cache every row is still written, as uncached."""
    texts = ["café au lait — 東京", "a dog", "café au lait — 東京"]
    cache = ParaphraseCache(tmp_path / "cache", {"backend": "test"})
    positions = tmp_path / "positions.parquet"
    writer = PositionsWriter(positions)
    writer.write([texts[0], None, texts[1]])
    writer.write([texts[2]])
    writer.close()

    def looked_up() -> pa.Table:
        cache.lookup_shard(positions, (0, 4), tmp_path / "hits.parquet", "v1")
        return pq.read_table(tmp_path / "hits.parquet")

    empty = looked_up()
    assert empty.column(POSITION).to_pylist() == [0, 2, 3]
    assert empty.column(KEY).to_pylist() == [cache.key(text) for text in texts]
    assert not any(empty.column(FOUND).to_pylist())
    assert empty.column(LAST_POSITION).to_pylist() == [3, 2, 3]
    cache.commit({cache.key(texts[0]): CachedAnswer("p", "ok", "v0", 1, 1, texts[0], "raw")})
    found = looked_up()
    assert found.column(FOUND).to_pylist() == [True, False, True]
    assert found.column(STALE_ANSWER).to_pylist() == ["raw", None, "raw"]  # v0 is not v1
