"""Paraphrase-cache lookups at scale: a 1M-caption shard against a 10M-answer cache.

The cache is generated vectorised (pyarrow/numpy; random keys for answers the shard
never asks for, real keys for the half it does) as ``--answers / --rows-per-chunk``
chunk files (0.88 GB for 10M answers), in a temporary directory removed at the end, or
kept in ``--keep DIR`` for reruns. Measured: the lookup over the loose chunk files, the
compaction, the lookup over the compacted segment (goal < 10 s), and one lookup of a
65,536-key batch (``StorageResource.batch_rows``), the unit the per-batch path looked up
in, and the whole shard through the stage's path (``StageRun.process_shard``: one lookup
per shard; misses left unanswered, so only lookups are timed).
The pyarrow scan that DuckDB's semi join replaced: see ``paraphrase/cache.py``.
This script imports pyarrow before the package, so Arrow keeps pyarrow's default pool
(mimalloc) unless ``ARROW_DEFAULT_MEMORY_POOL=jemalloc`` is set, as the pipeline's
processes do (``arrow_pool``); the README's figures say which they used.

Run: .venv/bin/python benchmarks/bench_paraphrase_cache.py [--answers 10000000]
[--shard 1000000] [--keep /tmp/paraclip-cache-10m]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from paraclip_pipeline.paraphrase import cache as cache_module
from paraclip_pipeline.paraphrase import hygiene
from paraclip_pipeline.paraphrase.backends.base import Completion, ParaphraseBackend
from paraclip_pipeline.paraphrase.cache import CACHE_SCHEMA, CacheHit, ParaphraseCache
from paraclip_pipeline.paraphrase.config import ParaphraserConfig
from paraclip_pipeline.paraphrase.engine import StageRun
from paraclip_pipeline_tests.paraphrase.builders import stage1_rows

ENGINE_BATCH_ROWS = 1 << 16  # StorageResource.batch_rows' default: the assets' lookup unit

HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def random_keys(count: int, rng: np.random.Generator) -> pa.Array:
    """``count`` random 64-character hex keys, built as one string buffer."""
    raw = rng.integers(0, 256, size=(count, 32), dtype=np.uint8)
    chars = np.stack([HEX[raw >> 4], HEX[raw & 15]], axis=2).reshape(-1)
    offsets = np.arange(0, 64 * (count + 1), 64, dtype=np.int64)
    return pa.LargeStringArray.from_buffers(
        count, pa.py_buffer(offsets), pa.py_buffer(chars.tobytes())
    ).cast(pa.string())


def answers_table(keys: pa.Array, first: int) -> pa.Table:
    numbers = pc.cast(pa.array(np.arange(first, first + len(keys))), pa.string())
    text = pc.binary_join_element_wise("cached caption number ", numbers, "")
    answer = pc.binary_join_element_wise("a reworded caption, number ", numbers, "")
    count = len(keys)
    return pa.table(
        {
            "key": keys,
            "input_text": text,
            "answer": answer,
            "paraphrase": answer,
            "status": pa.array(["ok"] * count),
            "hygiene_version": pa.array([hygiene.HYGIENE_VERSION] * count),
            "prompt_tokens": pa.array(np.full(count, 20, dtype=np.int64)),
            "completion_tokens": pa.array(np.full(count, 8, dtype=np.int64)),
        },
        schema=CACHE_SCHEMA,
    )


def build(cache: ParaphraseCache, arguments: argparse.Namespace, hits: list[str]) -> None:
    """Write ``--answers`` answers as loose chunk files, half the shard's texts among them."""
    cache.directory.mkdir(parents=True)
    started = time.perf_counter()
    known = pa.array([cache.key(text) for text in hits], pa.string())
    rng = np.random.default_rng(0)
    keys = pa.concat_arrays([known, random_keys(arguments.answers - len(known), rng)])
    for number, first in enumerate(range(0, arguments.answers, arguments.rows_per_chunk)):
        part = keys.slice(first, arguments.rows_per_chunk)
        pq.write_table(answers_table(part, first), cache.directory / f"chunk-{number:08d}.parquet")
    size_gb = sum(p.stat().st_size for p in cache.directory.iterdir()) / 1e9
    print(
        f"generated {arguments.answers:,} answers in {len(cache.chunk_files())} chunk files, "
        f"{size_gb:.2f} GB, {time.perf_counter() - started:.1f} s"
    )


class CacheOnlyBackend(ParaphraseBackend):
    """The benchmark cache's namespace; never asked (``LookupOnlyRun`` answers no miss)."""

    name = "bench"
    default_model = "none"

    def __init__(self, identity: dict[str, object]) -> None:
        super().__init__(ParaphraserConfig())
        self._identity = identity

    def cache_identity(self, stage: int) -> dict[str, object]:  # type: ignore[override]
        return self._identity

    def _generate(self, requests: object) -> list[Completion]:
        raise AssertionError("the benchmark makes no backend calls")


class LookupOnlyRun(StageRun):
    """The stage's path with its misses left unanswered: what is timed is the lookups."""

    def _call_backend(self, text_by_key: dict[str, str], answers: dict[str, CacheHit]) -> list[str]:
        return []


def timed_stage_path(cache_root: Path, identity: dict[str, object], texts: list[str]) -> float:
    """The whole shard through ``StageRun.process_shard`` in engine batches: keys streamed
    once, one lookup, then each batch answered from the hit file."""
    rows = stage1_rows(texts)
    backend = CacheOnlyBackend(identity)
    started = time.perf_counter()
    with LookupOnlyRun(
        stage=1, config=backend.config, cache_dir=cache_root, backend=backend
    ) as run:
        for _ in run.process_shard(lambda: rows.to_batches(max_chunksize=ENGINE_BATCH_ROWS)):
            pass
        stats = run.stats()
    seconds = time.perf_counter() - started
    assert stats.cache_hits == len(texts) // 2 and stats.calls == 0, stats
    return seconds


def timed_lookup(cache: ParaphraseCache, keys: list[str], expected: int) -> float:
    started = time.perf_counter()
    found = cache.lookup(keys)
    seconds = time.perf_counter() - started
    assert len(found) == expected, len(found)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--answers", type=int, default=10_000_000)
    parser.add_argument("--shard", type=int, default=1_000_000)
    parser.add_argument("--rows-per-chunk", type=int, default=5_000)
    parser.add_argument(
        "--keep",
        type=Path,
        help="build the cache in this directory and keep it: a rerun skips the build, "
        "the loose-chunk baseline and the compaction (10M answers take minutes to build)",
    )
    arguments = parser.parse_args()
    root = arguments.keep or Path(tempfile.mkdtemp(prefix="bench-cache-"))
    try:
        identity: dict[str, object] = {"backend": "bench", "answers": arguments.answers}
        cache = ParaphraseCache(root, identity)
        shard_texts = [f"shard caption number {i}" for i in range(arguments.shard)]
        hits = shard_texts[: arguments.shard // 2]
        if not cache.directory.exists():
            build(cache, arguments, hits)
        shard_keys = [cache.key(text) for text in shard_texts]

        cache_module.COMPACT_AT_CHUNKS = 10**9  # lookups over loose chunks first
        cache_module.COMPACT_AT_BYTES = 1 << 62
        if cache.chunk_files():
            loose_s = timed_lookup(cache, shard_keys, len(hits))
            print(f"lookup over {len(cache.chunk_files())} loose chunks: {loose_s:.2f} s")
            started = time.perf_counter()
            cache.compact(min_chunks=1)
            compact_s = time.perf_counter() - started
            print(f"compaction into {len(cache.segment_files())} segment(s): {compact_s:.1f} s")
        segment_s = timed_lookup(cache, shard_keys, len(hits))
        print(
            f"lookup of {arguments.shard:,} keys ({len(hits):,} hits) against "
            f"{arguments.answers:,} answers in {len(cache.segment_files())} segment(s): "
            f"{segment_s:.2f} s (goal < 10 s, {segment_s / 10:.2f}x of goal)"
        )
        batch = shard_keys[:ENGINE_BATCH_ROWS]
        batch_s = timed_lookup(cache, batch, min(len(batch), len(hits)))
        batches = -(-arguments.shard // ENGINE_BATCH_ROWS)
        print(
            f"one engine batch ({len(batch):,} keys): {batch_s:.2f} s; the stage asset looks up "
            f"per batch, so the shard's {batches} batches cost about {batches * batch_s:.0f} s"
        )
        stage_s = timed_stage_path(root, identity, shard_texts)
        peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
        print(
            f"whole {arguments.shard:,}-caption shard through the stage's lookup path "
            f"(StageRun.process_shard: keys, one lookup, {batches} batches from the hit file): "
            f"{stage_s:.2f} s (goal < 10 s, {stage_s / 10:.2f}x of goal); "
            f"peak RSS of the benchmark {peak_gb:.2f} GB"
        )
    finally:
        if arguments.keep is None:
            shutil.rmtree(root)


if __name__ == "__main__":
    main()
