"""Throughput of ``read_shard`` on a synthetic LAION Parquet shard.

Baseline: pyarrow's bare ``pq.read_table`` of the same file, in the same process, so the
ratio is the cost of validation, caption cleaning, caption ids and the schema rebuild on
top of the raw read. Run: ``.venv/bin/python benchmarks/bench_sources.py [rows]``.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from paraclip_pipeline.sources import ShardFile, read_shard

WORDS = [
    "a",
    "the",
    "dog",
    "cat",
    "red",
    "blue",
    "bus",
    "park",
    "beach",
    "city",
    "running",
    "sitting",
    "near",
    "under",
    "old",
    "new",
]
REPEATS = 3


def synthetic_shard(directory: Path, rows: int) -> ShardFile:
    rng = random.Random(0)
    captions = [" ".join(rng.choices(WORDS, k=rng.randint(3, 15))) for _ in range(rows)]
    table = pa.table(
        {
            "SAMPLE_ID": pa.array(range(rows), pa.int64()),
            "URL": [f"https://example.com/{index}.jpg" for index in range(rows)],
            "TEXT": captions,
            "NSFW": ["UNLIKELY"] * rows,
            "similarity": [0.3] * rows,
        }
    )
    path = directory / "bench_000.parquet"
    pq.write_table(table, path)
    return ShardFile(key="bench_000", path=str(path), format="laion_parquet")


def best_seconds(action: Callable[[], object]) -> float:
    timings = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return min(timings)


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        shard = synthetic_shard(Path(tmp), rows)
        baseline = best_seconds(lambda: pq.read_table(shard.path))
        ours = best_seconds(lambda: read_shard(shard))
    print(f"rows: {rows}")
    print(f"baseline pq.read_table: {baseline * 1000:.1f} ms ({rows / baseline:,.0f} rows/s)")
    print(f"read_shard:             {ours * 1000:.1f} ms ({rows / ours:,.0f} rows/s)")
    print(f"ratio read_shard / baseline: {ours / baseline:.1f}x")


if __name__ == "__main__":
    main()
