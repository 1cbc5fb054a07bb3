"""``paraclip shards list | retire <key>``: each shard partition's status, and retiring one.

The new-shard sensor retires the partition of a removed file by itself; this command is
for the rest (a partition registered by hand, a sensor that was off when the file went).
"""

from __future__ import annotations

import sys

import dagster as dg

from paraclip_pipeline.asset_names import CAPTION_SHARDS
from paraclip_pipeline.lineage.pending import REMOVED, pending_shards
from paraclip_pipeline.lineage.shard_status import shard_statuses
from paraclip_pipeline.sources import discover_shards


def list_shards(instance: dg.DagsterInstance, rules_code_version: str) -> str:
    """One line per registered shard: key, status, whether it is pending retraining (new,
    changed, left_out since the latest checkpoint; ``-`` when not) and reason (``-`` when
    there is none); then the retired shards still pending, and how many are pending."""
    keys = sorted(instance.get_dynamic_partitions(CAPTION_SHARDS))
    if not keys:
        return "no shard partitions are registered"
    statuses = shard_statuses(instance, keys, rules_code_version)
    pending = {s.partition: s.change for s in pending_shards(instance, rules_code_version).shards}
    width = max(len(key) for key in keys)
    lines = [f"{'shard':<{width}}  {'status':<13}  {'pending':<8}  reason"]
    lines += [
        f"{key:<{width}}  {statuses[key].status:<13}  {pending.get(key, '-'):<8}  "
        f"{statuses[key].reason}"
        for key in keys
    ]
    removed = sorted(key for key, change in pending.items() if change == REMOVED)
    if removed:
        lines.append(f"retired since the latest checkpoint: {', '.join(removed)}")
    lines.append(f"{len(pending)} shard(s) pending retraining (PARACLIP_RETRAIN_POLICY says when)")
    return "\n".join(lines)


def retire_shard(instance: dg.DagsterInstance, key: str, shards_location: str) -> int:
    """Delete ``key``'s dynamic partition; refused while its file is still there (the
    sensor would register it again on its next tick)."""
    if not instance.has_dynamic_partition(CAPTION_SHARDS, key):
        print(f"paraclip shards: no shard partition {key!r}", file=sys.stderr)
        return 2
    if any(shard.key == key for shard in discover_shards(shards_location).shards):
        print(
            f"paraclip shards: the file of shard {key!r} is still in {shards_location}; remove "
            "it first (the sensor then retires the partition by itself)",
            file=sys.stderr,
        )
        return 2
    instance.delete_dynamic_partition(CAPTION_SHARDS, key)
    print(f"retired shard {key}: its partition is gone; its stored outputs stay on disk")
    return 0
