"""Peak memory of preparing and streaming one epoch of a generated shard, in its own process.

``python -m paraclip_pipeline_tests.training.memory_probe WORK ROWS DIM`` writes a shard of
``ROWS`` pairs and ``DIM``-wide image embeddings batch by batch (so generating it costs
little memory), then prints JSON: the resident set after imports and after generating, and
the peak (VmHWM) of preparing and of reading every micro-batch of one epoch.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from paraclip_pipeline import schema
from paraclip_pipeline.training.prepare import prepare_training_data
from paraclip_pipeline.training.stream import micro_batches

BATCH = 10_000
MICRO = 256


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status (Linux only)")


def reset_peak() -> None:
    """Start VmHWM again from the current resident set (Linux: clear_refs 5)."""
    Path("/proc/self/clear_refs").write_text("5")


def write_shard(work: Path, rows: int, dim: int, model: str = "m") -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    pairs_path, embeddings_path = work / "pairs.parquet", work / "embeddings.parquet"
    with (
        pq.ParquetWriter(pairs_path, schema.FILTERED_PAIRS_SCHEMA) as pairs,
        pq.ParquetWriter(embeddings_path, schema.IMAGE_EMBEDDINGS_SCHEMA) as embeddings,
    ):
        for start in range(0, rows, BATCH):
            ids = [f"c{index:09d}" for index in range(start, min(start + BATCH, rows))]
            texts = [f"caption number {index} of a synthetic shard" for index in range(len(ids))]
            texts = [f"{text} {cid}" for text, cid in zip(texts, ids, strict=True)]
            pairs.write_table(
                pa.table(
                    {
                        schema.CAPTION_ID: ids,
                        schema.SHARD: ["s"] * len(ids),
                        schema.TEXT: texts,
                        schema.PARAPHRASE_1: [f"a photo: {t}" for t in texts],
                        schema.PARAPHRASE_2: [f"an image: {t}" for t in texts],
                        schema.SPLIT: [schema.TRAIN] * len(ids),
                    },
                    schema=schema.FILTERED_PAIRS_SCHEMA,
                )
            )
            vectors = rng.standard_normal((len(ids), dim), dtype=np.float32)
            embeddings.write_table(
                pa.table(
                    {
                        schema.CAPTION_ID: ids,
                        schema.HAS_IMAGE: [True] * len(ids),
                        schema.IMAGE_EMBEDDING: pa.FixedSizeListArray.from_arrays(
                            vectors.reshape(-1), dim
                        ).cast(pa.list_(pa.float32())),
                        schema.IMAGE_EMBEDDING_MODEL: [model] * len(ids),
                    },
                    schema=schema.IMAGE_EMBEDDINGS_SCHEMA,
                )
            )
    return pairs_path, embeddings_path


def _tokens(texts: list[str]) -> torch.Tensor:
    """A stand-in tokenizer (lengths only): this probe measures memory, not tokenisation."""
    return torch.tensor([[len(text)] for text in texts], dtype=torch.int32)


def main(work: Path, rows: int, dim: int) -> dict[str, float]:
    after_imports = _status_mb("VmRSS")
    pairs, embeddings = write_shard(work, rows, dim)
    after_generating = _status_mb("VmRSS")
    reset_peak()
    started = time.perf_counter()
    data = prepare_training_data([pairs], [embeddings], work / "prepared")
    prepared_s = time.perf_counter() - started
    prepare_peak = _status_mb("VmHWM")
    reset_peak()
    per_epoch = rows // MICRO
    seen = 0
    for batch in micro_batches(
        data,
        _tokens,
        workers=0,
        per_epoch=per_epoch,
        start=0,
        stop=per_epoch,
        micro=MICRO,
        rank=0,
        world_size=1,
        seed=0,
        shuffle_buffer=1 << 15,
    ):
        seen += len(batch.has_image)
    return {
        "rss_after_imports_mb": after_imports,
        "rss_after_generating_mb": after_generating,
        "prepare_peak_mb": prepare_peak,
        "epoch_peak_mb": _status_mb("VmHWM"),
        "prepare_s": prepared_s,
        "epoch_s": time.perf_counter() - started - prepared_s,
        "rows_seen": seen,
        "embedding_matrix_mb": rows * dim * 4 / 2**20,
    }


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))))
