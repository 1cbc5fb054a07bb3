"""Pipeline work run in a child process, so a test can SIGKILL it part-way and rerun it.

``python -m paraclip_pipeline_tests.reliability.workers TASK ARGS...``; each task writes
its outputs through ``paraclip_pipeline.storage`` exactly as the assets do, and sleeps a
little between units of work (chunks, steps, file writes) so the parent has a window in
which to kill it with something durable already on disk.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from paraclip_pipeline import schema
from paraclip_pipeline.paraphrase.backends.base import (
    Completion,
    ParaphraseBackend,
    ParaphraseRequest,
)
from paraclip_pipeline.paraphrase.config import ParaphraserConfig
from paraclip_pipeline.storage import write_parquet_atomic

torch.set_num_threads(1)

# Seconds of pause per unit of work; the parent kills inside this window.
PAUSE_ENV = "PARACLIP_TEST_PAUSE_S"
STAGE_CONFIG = ParaphraserConfig(chunk_size=2)


def _pause() -> None:
    time.sleep(float(os.environ.get(PAUSE_ENV, "0")))


class SlowRewriter(ParaphraseBackend):
    """A deterministic stand-in LLM that takes a while per chunk, like a real one."""

    name = "slow-rewriter"
    default_model = "slow-rewriter-v1"

    def _generate(self, requests: Sequence[ParaphraseRequest]) -> list[Completion]:
        _pause()
        return [
            Completion(text=f"a picture showing {request.text.lower()}") for request in requests
        ]


def paraphrase(rows_path: str, cache_dir: str, output_path: str) -> None:
    """Stage 1 then stage 2 over a raw_captions table, cached chunk by chunk."""
    from paraclip_pipeline.paraphrase.engine import run_paraphrase_stage

    rows = pq.read_table(rows_path).select(list(schema.STAGE1_INPUT_COLUMNS))
    backend = SlowRewriter(STAGE_CONFIG)
    for stage in (1, 2):
        rows = run_paraphrase_stage(
            rows, stage=stage, config=STAGE_CONFIG, cache_dir=Path(cache_dir), backend=backend
        ).table
    write_parquet_atomic(rows, Path(output_path))


def paraphrase_http(rows_path: str, cache_dir: str, output_path: str, base_url: str) -> None:
    """Stage 1 through the openai-compatible client (sliding window) against ``base_url``."""
    from paraclip_pipeline.paraphrase.engine import run_paraphrase_stage

    config = ParaphraserConfig(
        backend="openai_compatible", model="fake", base_url=base_url, chunk_size=4, concurrency=8
    )
    rows = pq.read_table(rows_path).select(list(schema.STAGE1_INPUT_COLUMNS))
    result = run_paraphrase_stage(rows, stage=1, config=config, cache_dir=Path(cache_dir))
    write_parquet_atomic(result.table, Path(output_path))
    print(json.dumps({"calls": result.stats.calls}))


def filter_pairs(pairs_path: str, rules_path: str, output_dir: str) -> None:
    """Rejected rows first, then kept rows, pausing inside the kept write (before the rename)."""
    from paraclip_pipeline.filtering.apply import apply_filter_rules
    from paraclip_pipeline.filtering.rules import load_rules

    real_write = pq.write_table

    def slow_write(table: pa.Table, where: object, **options: object) -> None:
        real_write(table, where, **options)
        if Path(str(where)).name.startswith(".kept.parquet."):
            _pause()

    pq.write_table = slow_write
    outcome = apply_filter_rules(pq.read_table(pairs_path), load_rules(Path(rules_path)), None)
    write_parquet_atomic(outcome.rejected, Path(output_dir) / "rejected.parquet")
    write_parquet_atomic(outcome.kept, Path(output_dir) / "kept.parquet")


def train(pairs_path: str, embeddings_path: str, output_dir: str) -> None:
    """The tiny-random text tower, a checkpoint of the training state every other step."""
    from paraclip_pipeline.modeling.profiles import get_profile
    from paraclip_pipeline.training.config import TrainConfig
    from paraclip_pipeline.training.loop import train_text_encoder

    config = TrainConfig(lr=1e-3, warmup_steps=2, batch_size=8, epochs=3, checkpoint_every_steps=2)
    # The files themselves, as training gets them: a rerun reuses the prepared data.
    result = train_text_encoder(
        [pairs_path],
        [embeddings_path],
        profile=get_profile("tiny-random"),
        config=config,
        output_dir=Path(output_dir),
        inputs=[],
        log=lambda message: _pause() if message.startswith("step ") else None,
    )
    print(json.dumps({"weights_sha256": result.manifest["weights_sha256"]}))


def shard_job(settings_path: str, partition_key: str) -> None:
    """``shard_job`` for one partition against the file-based instance in $DAGSTER_HOME."""
    import dagster as dg

    from paraclip_pipeline.definitions import build_defs
    from paraclip_pipeline.settings import Settings

    values = json.loads(Path(settings_path).read_text(encoding="utf-8"))
    # Path-typed settings travel as JSON strings (or null).
    settings = Settings(
        **{
            key: Path(value) if value and key.endswith(("_root", "_path")) else value
            for key, value in values.items()
        }
    )
    job = build_defs(settings).resolve_job_def("shard_job")
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            partition_key=partition_key, instance=instance, raise_on_error=False
        )
    print(json.dumps({"success": result.success, "run_id": result.run_id}))


def stream_stages(shards: str, storage_root: str, key: str, rules: str, batch_rows: str) -> None:
    """The per-shard assets streaming a shard, pausing after each batch written."""
    import dagster as dg

    from paraclip_pipeline.storage import ParquetStreamWriter
    from paraclip_pipeline_tests.defs.streaming import materialize_stages, use_cheap_rewriter

    use_cheap_rewriter()
    real_write = ParquetStreamWriter.write

    def slow_write(writer: ParquetStreamWriter, rows: pa.Table | pa.RecordBatch) -> None:
        real_write(writer, rows)
        _pause()

    ParquetStreamWriter.write = slow_write  # type: ignore[method-assign]
    with dg.instance_for_test() as instance:
        result = materialize_stages(
            Path(shards), Path(storage_root), key, int(batch_rows), Path(rules), instance
        )
    versions = {
        event.asset_key.path[-1]: event.materialization.tags["dagster/data_version"]
        for event in result.get_asset_materialization_events()
    }
    print(json.dumps(versions))


TASKS = {
    "paraphrase": paraphrase,
    "paraphrase_http": paraphrase_http,
    "filter": filter_pairs,
    "train": train,
    "shard_job": shard_job,
    "stream_stages": stream_stages,
}

if __name__ == "__main__":
    TASKS[sys.argv[1]](*sys.argv[2:])
