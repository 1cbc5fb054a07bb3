"""Write small shard fixtures (good and bad) for the sources tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from paraclip_pipeline.sources import ShardFile


def laion_parquet(directory: Path, key: str, columns: dict[str, Any]) -> ShardFile:
    path = directory / f"{key}.parquet"
    pq.write_table(pa.table(columns), path)
    return ShardFile(key=key, path=str(path), format="laion_parquet")


def jsonl_bytes(directory: Path, key: str, data: bytes) -> ShardFile:
    path = directory / f"{key}.jsonl"
    path.write_bytes(data)
    return ShardFile(key=key, path=str(path), format="jsonl")


def two_file(directory: Path, key: str, captions: bytes, image_ids: bytes) -> ShardFile:
    shard_dir = directory / key
    shard_dir.mkdir()
    (shard_dir / "captions.txt").write_bytes(captions)
    (shard_dir / "img_ids.txt").write_bytes(image_ids)
    return ShardFile(key=key, path=str(shard_dir), format="two_file")
