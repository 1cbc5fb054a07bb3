"""Queries over Dagster's event log that lineage, checks and sensors share.

This is the one plain module that imports Dagster: the event log is Dagster's own
record of what was materialised from what. Every query here is a single indexed
lookup per asset, so it stays fast with thousands of shard partitions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import dagster as dg
from dagster._core.definitions.data_version import CODE_VERSION_TAG, DATA_VERSION_TAG

MATERIALIZATION = dg.DagsterEventType.ASSET_MATERIALIZATION


@dataclass(frozen=True)
class PartitionRecord:
    partition: str
    storage_id: int
    data_version: str | None
    code_version: str | None


def latest_partition_records(
    instance: dg.DagsterInstance,
    asset_key: dg.AssetKey,
    partitions: Sequence[str] | None = None,
) -> dict[str, PartitionRecord]:
    """Latest materialization of each partition: storage id, data version, code version."""
    storage = instance.event_log_storage
    storage_ids = storage.get_latest_storage_id_by_partition(
        asset_key, MATERIALIZATION, set(partitions) if partitions is not None else None
    )
    if not storage_ids:
        return {}
    # Only the data version tag is indexed per partition, so read the code version from
    # the records themselves: one batched fetch by storage id.
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, storage_ids=list(storage_ids.values())),
        limit=len(storage_ids),
    ).records
    tags_by_id = {record.storage_id: record.asset_materialization.tags for record in records}
    return {
        partition: PartitionRecord(
            partition=partition,
            storage_id=storage_id,
            data_version=tags_by_id.get(storage_id, {}).get(DATA_VERSION_TAG),
            code_version=tags_by_id.get(storage_id, {}).get(CODE_VERSION_TAG),
        )
        for partition, storage_id in storage_ids.items()
    }


def stale_code_version_partitions(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, current_code_version: str
) -> list[str]:
    """Partitions whose latest materialization was made by another code version."""
    return [
        record.partition
        for record in latest_partition_records(instance, asset_key).values()
        if record.code_version != current_code_version
    ]


def data_versions(records: Mapping[str, PartitionRecord]) -> dict[str, str | None]:
    return {key: record.data_version for key, record in records.items()}


def latest_storage_id(instance: dg.DagsterInstance, asset_key: dg.AssetKey) -> int | None:
    """Storage id of the asset's newest materialization (any partition), None if never built."""
    records = instance.fetch_materializations(asset_key, limit=1).records
    return records[0].storage_id if records else None
