"""Per-shard data steps on Ray Data: one Ray job streams a batch of shards through
``map_batches``, one shard per batch, each task running the step's plain function
(``shard_steps.STEPS``), and returns one record per shard (rows, data version, path,
metadata, or the shard's error) for Dagster to report per partition.

Why one job per batch of partitions and never one per shard per step: a Ray job costs about
4 s of start-up (measured, issue 15), which a tiny shard does not repay. The data version of
each output is the one the in-process step reports, so a shard built on Ray is not stale to
an in-process run and the reverse.

Batch paraphrasing runs in an actor pool instead of tasks (``actors`` of them): each actor
builds the configured backend once and keeps it, so with ``openai_compatible`` each actor is
one async client holding ``concurrency`` requests in flight, and N actors on N machines drive
N x the requests against a fleet of servers. The content-addressed cache lives under the
storage root, which every node must see (a shared directory): chunks an actor commits are
hits for every other actor and for any rerun.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

from paraclip_pipeline.distributed.ray_cluster import join_cluster
from paraclip_pipeline.distributed.shard_steps import (
    PARAPHRASE_STEPS,
    RECORD_FIELDS,
    STEPS,
    ShardRecord,
    StepOptions,
    paraphraser_config,
    run_step_safely,
)
from paraclip_pipeline.paraphrase.config import CO_CAPTIONS

__all__ = ["RECORD_FIELDS", "ShardRecord", "StepOptions", "run_step_on_ray"]


_RECORD_SCHEMA = pa.schema(
    [
        ("shard", pa.string()),
        ("rows", pa.int64()),
        ("data_version", pa.string()),
        ("path", pa.string()),
        ("metadata_json", pa.string()),
        ("error", pa.string()),
        ("quarantine", pa.string()),
    ]
)


def _records_table(records: list[ShardRecord]) -> pa.Table:
    columns = {name: [record[name] for record in records] for name in RECORD_FIELDS}
    return pa.table(columns, schema=_RECORD_SCHEMA)


def _step_batch(step: str, options: StepOptions) -> Callable[[pa.Table], pa.Table]:
    def run(batch: pa.Table) -> pa.Table:
        shards = batch.column("shard").to_pylist()
        return _records_table([run_step_safely(step, key, options) for key in shards])

    return run


class ParaphraseActor:
    """One actor of the paraphrasing pool: one backend (one async client) for its lifetime."""

    def __init__(self, step: str, options: StepOptions) -> None:
        from paraclip_pipeline.paraphrase.backends import build_backend

        self.step, self.options = step, options
        config = paraphraser_config(options)
        # co_captions is built per shard from that shard's groups (shard_steps), not per actor.
        self.backend = None if config.backend == CO_CAPTIONS else build_backend(config)

    def __call__(self, batch: pa.Table) -> pa.Table:
        shards = batch.column("shard").to_pylist()
        records = [
            run_step_safely(self.step, key, self.options, backend=self.backend) for key in shards
        ]
        return _records_table(records)


def run_step_on_ray(
    step: str,
    shard_keys: list[str],
    options: StepOptions,
    *,
    address: str | None = None,
    cpus_per_task: float = 1.0,
    actors: int = 2,
    max_retries: int = 2,
) -> list[ShardRecord]:
    """Run ``step`` over ``shard_keys`` as one Ray Data pipeline; records in ``shard_keys`` order.

    ``address`` None joins the cluster the calling process runs in (a submitted Ray job). A
    task whose worker dies is retried ``max_retries`` times (Ray's own task retry); a shard
    whose step raises comes back with ``error`` set.
    """
    import ray

    if step not in STEPS:
        raise ValueError(f"no Ray implementation of step {step!r}; known: {sorted(STEPS)}")
    if not shard_keys:
        return []
    join_cluster(address)
    items = ray.data.from_items(
        [{"shard": key} for key in shard_keys], override_num_blocks=len(shard_keys)
    )
    common = {"batch_size": 1, "batch_format": "pyarrow", "num_cpus": cpus_per_task}
    if step in PARAPHRASE_STEPS:
        dataset = items.map_batches(
            ParaphraseActor,
            fn_constructor_args=(step, options),
            concurrency=min(actors, len(shard_keys)),
            max_restarts=max_retries,
            max_task_retries=max_retries,
            **common,
        )
    else:
        dataset = items.map_batches(_step_batch(step, options), max_retries=max_retries, **common)
    by_shard = {record["shard"]: record for record in dataset.take_all()}
    return [by_shard[key] for key in shard_keys]
