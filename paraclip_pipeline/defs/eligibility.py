"""Which shards training and the report use, and what they leave out and why.

Only partitions whose latest filtered_pairs passed its training-gate checks and was built with
the loaded filter rules train; quarantined, check-failed, stale and not-yet-built shards
are listed with their reason in the checkpoint's manifest and metadata and in the report.
"""

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import TypeVar

import dagster as dg

from paraclip_pipeline.asset_names import FILTERED_PAIRS, IMAGE_EMBEDDINGS
from paraclip_pipeline.defs.partitions import caption_shards
from paraclip_pipeline.lineage.shard_status import ShardStatus, shard_statuses

T = TypeVar("T")
EXCLUDED_COLUMNS = ["partition", "status", "reason"]


def current_rules_version(context: dg.AssetExecutionContext) -> str | None:
    """filtered_pairs' code version in the loaded code location (it carries the rules hash).

    Read from the run's asset graph, which holds every asset of the code location, so it
    works in-process too (where there is no repository definition)."""
    return context.job_def.asset_layer.asset_graph.get(dg.AssetKey(FILTERED_PAIRS)).code_version


def select_trainable(
    context: dg.AssetExecutionContext, tables: Mapping[str, T]
) -> tuple[dict[str, T], list[dict[str, str]]]:
    """The tables of shards that may train, and one ``{partition, status, reason}`` per
    registered or loaded shard left out."""
    partitions = sorted(
        set(context.instance.get_dynamic_partitions(caption_shards.name)) | set(tables)
    )
    statuses = shard_statuses(context.instance, partitions, current_rules_version(context))
    kept = {shard: table for shard, table in tables.items() if statuses[shard].trainable}
    excluded = [_excluded(status) for status in statuses.values() if not status.trainable]
    for item in excluded:
        context.log.info(f"left out shard {item['partition']}: {item['status']} ({item['reason']})")
    return kept, excluded


def _excluded(status: ShardStatus) -> dict[str, str]:
    return {"partition": status.partition, "status": status.status, "reason": status.reason}


def inputs_fingerprint(inputs: Sequence[Mapping[str, object]], *extra: object) -> str:
    """Hash of what a checkpoint is trained from: each shard's filtered_pairs and
    image_embeddings data versions plus ``extra`` (config, profile). Equal fingerprints
    mean a retrain would reproduce the same weights, so it is skipped."""
    parts = [
        (
            item["partition"],
            item.get("filtered_pairs_data_version"),
            (item.get("upstream") or {}).get(IMAGE_EMBEDDINGS, {}).get("data_version"),  # type: ignore[union-attr]
        )
        for item in inputs
    ]
    payload = json.dumps([parts, *extra], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def excluded_summary(excluded: Sequence[Mapping[str, str]]) -> str:
    """One line for the report: ``broken (quarantined: ...); latin1 (checks_failed: ...)``."""
    if not excluded:
        return "none"
    return "; ".join(f"{e['partition']} ({e['status']}: {e['reason']})" for e in excluded)
