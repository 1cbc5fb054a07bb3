"""Shards PENDING for training: what changed since the latest checkpoint was trained.

The latest checkpoint's metadata carries its manifest, whose ``inputs`` list every shard
it trained on with the data versions of its filtered_pairs and image_embeddings. Against
the shards that may train now (``shard_status``: ok, and with image embeddings built) a
shard is pending when it is ``new``, ``changed`` (another data version: an identical
rerun keeps its version and is not pending), ``removed`` (its partition was retired) or
``left_out`` (trained before, now quarantined or failing a check). A trained shard still
filtered with older rules is ``waiting``: automation refilters it, so retraining waits.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import dagster as dg

from paraclip_pipeline.asset_names import (
    CAPTION_SHARDS,
    FILTERED_PAIRS,
    IMAGE_EMBEDDINGS,
    TEXT_ENCODER_CHECKPOINT,
)
from paraclip_pipeline.lineage.event_log import latest_partition_versions
from paraclip_pipeline.lineage.shard_status import NOT_BUILT, STALE_RULES, shard_statuses

MANIFEST_KEY = "manifest"
NEW, CHANGED, REMOVED, LEFT_OUT = "new", "changed", "removed", "left_out"
# (filtered_pairs data version, image_embeddings data version) of one shard.
Versions = tuple[str | None, str | None]


@dataclass(frozen=True)
class PendingShard:
    partition: str
    change: str
    reason: str = "-"


@dataclass(frozen=True)
class Pending:
    shards: list[PendingShard]
    # Trained shards whose refilter with the loaded rules has not landed yet.
    waiting: list[str]
    # The trainable state a retrain would train on: one run key per state.
    target: str
    # When the latest checkpoint was written (seconds since the epoch); None: never.
    checkpoint_timestamp: float | None
    trainable: list[str] = field(default_factory=list)
    trained: list[str] = field(default_factory=list)

    def rows(self) -> list[dict[str, str]]:
        return [
            {"partition": s.partition, "change": s.change, "reason": s.reason} for s in self.shards
        ]

    def digest(self) -> str:
        payload = json.dumps([self.rows(), self.waiting], sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def trained_versions(instance: dg.DagsterInstance) -> tuple[dict[str, Versions], float | None]:
    """Per-shard versions the latest checkpoint trained on, and when it was written."""
    event = instance.get_latest_materialization_event(dg.AssetKey(TEXT_ENCODER_CHECKPOINT))
    materialization = event.asset_materialization if event else None
    if event is None or materialization is None:
        return {}, None
    manifest = materialization.metadata.get(MANIFEST_KEY)
    inputs = manifest.value.get("inputs", []) if manifest is not None else []  # type: ignore[union-attr]
    versions = {
        str(item["partition"]): (
            item.get("filtered_pairs_data_version"),
            ((item.get("upstream") or {}).get(IMAGE_EMBEDDINGS) or {}).get("data_version"),
        )
        for item in inputs
    }
    return versions, event.timestamp


def pending_shards(instance: dg.DagsterInstance, filtered_pairs_code_version: str) -> Pending:
    """What a retrain now would change against the latest checkpoint."""
    trained, timestamp = trained_versions(instance)
    registered = list(instance.get_dynamic_partitions(CAPTION_SHARDS))
    statuses = shard_statuses(instance, registered, filtered_pairs_code_version)
    pairs = latest_partition_versions(instance, dg.AssetKey(FILTERED_PAIRS), registered)
    embeddings = latest_partition_versions(instance, dg.AssetKey(IMAGE_EMBEDDINGS), registered)
    now: dict[str, Versions] = {
        shard: (pairs[shard].data_version, embeddings[shard].data_version)
        for shard, status in statuses.items()
        if status.trainable and shard in embeddings
    }
    changes = [
        PendingShard(shard, NEW if shard not in trained else CHANGED)
        for shard, versions in sorted(now.items())
        if trained.get(shard) != versions
    ]
    waiting = []
    for shard in sorted(set(trained) - set(now)):
        status = statuses.get(shard)
        if status is None:
            changes.append(PendingShard(shard, REMOVED, "partition retired (file gone)"))
        elif status.status in (STALE_RULES, NOT_BUILT) or status.trainable:
            waiting.append(shard)  # being rebuilt: its refilter or embeddings are due
        else:
            changes.append(PendingShard(shard, LEFT_OUT, f"{status.status}: {status.reason}"))
    target = hashlib.sha256(json.dumps(sorted(now.items())).encode()).hexdigest()[:16]
    return Pending(changes, waiting, target, timestamp, sorted(now), sorted(trained))
