"""Per-shard data steps on Ray Data: one Ray job streams a batch of shards through
``map_batches``, one shard per batch, and writes each shard's output where the in-process
asset's IO manager would (``assets/<step>/<shard>.parquet``, atomically), returning one
record per shard (rows, data version, path) for Dagster to report per partition.

Why one job per batch of partitions and never one per shard per step: a Ray job costs about
4 s of start-up (measured, issue 15), which a tiny shard does not repay. The data version of
each output is the one the in-process step reports (``raw_captions``: the shard file's
sha256), so a shard built on Ray is not stale to an in-process run and the reverse.

Only ingest (``raw_captions``) runs here so far; the other per-shard steps plug into
``STEPS`` the same way (a function from one shard key and the job's options to a record).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa

from paraclip_pipeline.asset_names import RAW_CAPTIONS
from paraclip_pipeline.storage import StorageLayout, write_parquet_atomic

ShardRecord = dict[str, Any]
# The record every step returns for one shard: the Dagster side reports it per partition.
RECORD_FIELDS = ("shard", "rows", "data_version", "path")


def ingest_shard(shard_key: str, options: dict[str, Any]) -> ShardRecord:
    """raw_captions for one shard, exactly as the in-process asset builds it."""
    from paraclip_pipeline.sources import find_shard, read_shard_checked, shard_content_hash

    shard = find_shard(options["location"], shard_key)
    read = read_shard_checked(
        shard, max_caption_chars=options["max_caption_chars"], image_root=options["image_root"]
    )
    layout = StorageLayout(Path(options["storage_root"]))
    path = write_parquet_atomic(read.table, layout.partition_file(RAW_CAPTIONS, shard_key))
    return {
        "shard": shard_key,
        "rows": len(read.table),
        "data_version": shard_content_hash(shard),
        "path": str(path),
    }


STEPS: dict[str, Callable[[str, dict[str, Any]], ShardRecord]] = {RAW_CAPTIONS: ingest_shard}


def _step_batch(step: str, options: dict[str, Any]) -> Callable[[pa.Table], pa.Table]:
    def run(batch: pa.Table) -> pa.Table:
        records = [STEPS[step](key, options) for key in batch.column("shard").to_pylist()]
        return pa.Table.from_pylist(records)

    return run


def run_step_on_ray(
    step: str,
    shard_keys: list[str],
    options: dict[str, Any],
    *,
    address: str | None = None,
    cpus_per_task: float = 1.0,
) -> list[ShardRecord]:
    """Run ``step`` over ``shard_keys`` as one Ray Data pipeline; records in ``shard_keys`` order.

    ``address`` None joins the cluster the calling process runs in (a submitted Ray job).
    """
    import ray

    if step not in STEPS:
        raise ValueError(f"no Ray implementation of step {step!r}; known: {sorted(STEPS)}")
    if not shard_keys:
        return []
    ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    dataset = ray.data.from_items(
        [{"shard": key} for key in shard_keys], override_num_blocks=len(shard_keys)
    ).map_batches(
        _step_batch(step, options), batch_size=1, batch_format="pyarrow", num_cpus=cpus_per_task
    )
    by_shard = {record["shard"]: record for record in dataset.take_all()}
    return [by_shard[key] for key in shard_keys]
