"""Which shard partitions may train, and why the others may not.

A shard is QUARANTINED when its file could not be ingested (raw_captions recorded a
quarantine observation newer than its last materialization) or when the latest
filtered_pairs of the partition failed a training-gate check (non-blocking for the
run). Training, the report, the ``paraclip shards`` command, the new-shard sensor and the
retraining policy all read the status from here, so "what was left out and why" has one
answer. Everything is an indexed event-log lookup
except the reasons, which are read only for quarantined shards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg

from paraclip_pipeline.asset_names import (
    CAPTION_SHARDS,
    FILTERED_PAIRS,
    RAW_CAPTIONS,
    TRAINING_GATE_CHECKS,
)
from paraclip_pipeline.lineage.event_log import latest_partition_records, latest_partition_versions

# Observation metadata key that raw_captions writes when it quarantines a shard.
QUARANTINE_REASON_KEY = "quarantined"
QUARANTINE_RUN_TAG = "paraclip/quarantined"

OK = "ok"
QUARANTINED = "quarantined"  # the shard file could not be ingested
CHECKS_FAILED = "checks_failed"  # the latest filtered_pairs failed a training-gate check
STALE_RULES = "stale_rules"  # filtered with other filter rules than the loaded ones
NOT_BUILT = "not_built"  # no filtered_pairs yet (new, or never ingested)
TRAINABLE = frozenset({OK})


@dataclass(frozen=True)
class ShardStatus:
    partition: str
    status: str
    reason: str = "-"

    @property
    def trainable(self) -> bool:
        return self.status in TRAINABLE


def quarantine_observations(
    instance: dg.DagsterInstance, partitions: Sequence[str] | None = None
) -> dict[str, tuple[int, str]]:
    """Shards whose latest ingestion attempt quarantined them: ``{shard: (storage id, reason)}``.

    A later successful materialization of raw_captions lifts the quarantine.
    """
    key = dg.AssetKey(RAW_CAPTIONS)
    storage = instance.event_log_storage
    observed = storage.get_latest_storage_id_by_partition(
        key, dg.DagsterEventType.ASSET_OBSERVATION, set(partitions) if partitions else None
    )
    if not observed:
        return {}
    materialized = latest_partition_versions(instance, key, list(observed))
    current = {
        shard: sid
        for shard, sid in observed.items()
        if shard not in materialized or materialized[shard].storage_id < sid
    }
    if not current:
        return {}
    records = instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=key, storage_ids=sorted(current.values())),
        limit=len(current),
    ).records
    reasons = {}
    for record in records:
        observation = record.asset_observation
        if observation is None or QUARANTINE_REASON_KEY not in observation.metadata:
            continue
        reasons[record.storage_id] = str(observation.metadata[QUARANTINE_REASON_KEY].value)
    return {shard: (sid, reasons[sid]) for shard, sid in current.items() if sid in reasons}


def failed_gate_checks(
    instance: dg.DagsterInstance, partitions: Sequence[str] | None = None
) -> dict[str, list[str]]:
    """Training-gate checks of filtered_pairs that failed on each partition's latest output."""
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

    keys = [dg.AssetCheckKey(dg.AssetKey(FILTERED_PAIRS), name) for name in TRAINING_GATE_CHECKS]
    infos = instance.event_log_storage.get_asset_check_partition_info(
        keys, partition_keys=list(partitions) if partitions is not None else None
    )
    failed: dict[str, list[str]] = {}
    for info in infos:
        if info.partition_key is None or not info.is_current:
            continue
        if info.latest_execution_status == AssetCheckExecutionRecordStatus.FAILED:
            failed.setdefault(info.partition_key, []).append(info.check_key.name)
    return {shard: sorted(names) for shard, names in failed.items()}


def shard_statuses(
    instance: dg.DagsterInstance,
    partitions: Sequence[str],
    filtered_pairs_code_version: str | None,
) -> dict[str, ShardStatus]:
    """One status per partition, the first that applies: quarantined, checks failed, not
    built, stale rules, ok. ``filtered_pairs_code_version`` None skips the rules test."""
    quarantined = quarantine_observations(instance, partitions)
    failed = failed_gate_checks(instance, partitions)
    pairs = latest_partition_records(instance, dg.AssetKey(FILTERED_PAIRS), list(partitions))
    statuses = {}
    for shard in partitions:
        record = pairs.get(shard)
        if shard in quarantined:
            status = ShardStatus(shard, QUARANTINED, quarantined[shard][1])
        elif shard in failed:
            status = ShardStatus(shard, CHECKS_FAILED, "failed " + ", ".join(failed[shard]))
        elif record is None:
            status = ShardStatus(shard, NOT_BUILT, "no filtered_pairs materialization yet")
        elif filtered_pairs_code_version and record.code_version != filtered_pairs_code_version:
            status = ShardStatus(
                shard,
                STALE_RULES,
                f"filtered with {record.code_version}, rules are now {filtered_pairs_code_version}",
            )
        else:
            status = ShardStatus(shard, OK)
        statuses[shard] = status
    return statuses


def stale_rules_partitions(
    instance: dg.DagsterInstance, filtered_pairs_code_version: str
) -> dict[str, str | None]:
    """Registered, non-quarantined shards whose latest filtered_pairs was built by another
    code version (other filter rules): ``{shard: the code version it was built with}``.

    A retired partition (file gone) or a quarantined one (no usable input) cannot be
    refiltered, so it is no stale alarm anyone can act on.
    """
    registered = set(instance.get_dynamic_partitions(CAPTION_SHARDS))
    quarantined = quarantine_observations(instance)
    records = latest_partition_records(instance, dg.AssetKey(FILTERED_PAIRS))
    return {
        shard: record.code_version
        for shard, record in sorted(records.items())
        if shard in registered
        and shard not in quarantined
        and record.code_version != filtered_pairs_code_version
    }
