"""Queries over Dagster's event log that lineage, checks, sensors and schedules share.

The lineage package is the one place outside ``defs/`` that imports Dagster: the event
log is Dagster's own record of what was materialised from what. Two costs matter at
thousands of shard partitions: indexed lookups (latest storage id and data version per
partition) are plain SQL and cheap; fetching whole event records means deserialising
their metadata and is ~0.5 ms a record, so it is done only where the answer needs it,
in pages Dagster accepts (at most 10,000 records a call).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg
from dagster._core.definitions.data_version import CODE_VERSION_TAG, DATA_VERSION_TAG

MATERIALIZATION = dg.DagsterEventType.ASSET_MATERIALIZATION
FETCH_PAGE = 10_000  # Dagster refuses larger record fetches


@dataclass(frozen=True)
class PartitionVersion:
    partition: str
    storage_id: int
    data_version: str | None


@dataclass(frozen=True)
class PartitionRecord(PartitionVersion):
    code_version: str | None


def latest_partition_versions(
    instance: dg.DagsterInstance,
    asset_key: dg.AssetKey,
    partitions: Sequence[str] | None = None,
) -> dict[str, PartitionVersion]:
    """Latest storage id and data version of each partition: indexed lookups only."""
    storage = instance.event_log_storage
    storage_ids = storage.get_latest_storage_id_by_partition(
        asset_key, MATERIALIZATION, set(partitions) if partitions is not None else None
    )
    if not storage_ids:
        return {}
    tags = storage.get_latest_tags_by_partition(
        asset_key, MATERIALIZATION, [DATA_VERSION_TAG], asset_partitions=list(storage_ids)
    )
    return {
        partition: PartitionVersion(
            partition, storage_id, tags.get(partition, {}).get(DATA_VERSION_TAG)
        )
        for partition, storage_id in storage_ids.items()
    }


def records_by_storage_id(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, storage_ids: Iterable[int | None]
) -> dict[int, Any]:
    """Full materialization records (tags, metadata, run id) for the given storage ids."""
    wanted = sorted({sid for sid in storage_ids if sid is not None})
    records: dict[int, Any] = {}
    for start in range(0, len(wanted), FETCH_PAGE):
        page = wanted[start : start + FETCH_PAGE]
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset_key, storage_ids=page), limit=len(page)
        )
        records.update({record.storage_id: record for record in result.records})
    return records


def latest_partition_records(
    instance: dg.DagsterInstance,
    asset_key: dg.AssetKey,
    partitions: Sequence[str] | None = None,
) -> dict[str, PartitionRecord]:
    """Latest materialization of each partition, with the code version that made it.

    Only the data version tag is indexed per partition, so the code version is read
    from the records themselves.
    """
    versions = latest_partition_versions(instance, asset_key, partitions)
    records = records_by_storage_id(instance, asset_key, (v.storage_id for v in versions.values()))
    return {
        partition: PartitionRecord(
            partition=partition,
            storage_id=version.storage_id,
            data_version=version.data_version,
            code_version=(
                records[version.storage_id].asset_materialization.tags.get(CODE_VERSION_TAG)
                if version.storage_id in records
                else None
            ),
        )
        for partition, version in versions.items()
    }
