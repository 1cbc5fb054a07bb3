"""The per-shard provenance a checkpoint manifest records.

Dagster keeps one input pointer for a many-to-one input, so the checkpoint records,
for every shard it trained on, the materialization (storage id + data version) of each
asset in the shard's chain: filtered_pairs, the two paraphrase steps, raw_captions
(whose data version is the shard file's content hash) and image_embeddings. Built from
indexed event-log lookups only, so it is cheap at thousands of shards, and
``paraclip lineage`` answers from the manifest without scanning the event log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import dagster as dg

from paraclip_pipeline.asset_names import (
    FILTERED_PAIRS,
    IMAGE_EMBEDDINGS,
    RAW_CAPTIONS,
    STAGE1_PARAPHRASES,
    STAGE2_PARAPHRASES,
)
from paraclip_pipeline.lineage.event_log import latest_partition_versions

# Assets filtered_pairs is computed from; image_embeddings feeds training directly.
FILTER_INPUTS = (STAGE2_PARAPHRASES, STAGE1_PARAPHRASES, RAW_CAPTIONS)
UPSTREAM_CHAIN = (*FILTER_INPUTS, IMAGE_EMBEDDINGS)


@dataclass(frozen=True)
class ShardRows:
    rows: int
    train_rows: int


def shard_inputs(
    instance: dg.DagsterInstance, rows_by_shard: Mapping[str, ShardRows]
) -> list[dict[str, object]]:
    """One manifest entry per shard, sorted by shard key."""
    shards = sorted(rows_by_shard)
    pairs = latest_partition_versions(instance, dg.AssetKey(FILTERED_PAIRS), shards)
    chain = {
        name: latest_partition_versions(instance, dg.AssetKey(name), shards)
        for name in UPSTREAM_CHAIN
    }
    inputs: list[dict[str, object]] = []
    for shard in shards:
        record = pairs.get(shard)
        upstream = {
            name: {"storage_id": version.storage_id, "data_version": version.data_version}
            for name in UPSTREAM_CHAIN
            if (version := chain[name].get(shard)) is not None
        }
        inputs.append(
            {
                "partition": shard,
                "rows": rows_by_shard[shard].rows,
                "train_rows": rows_by_shard[shard].train_rows,
                "filtered_pairs_storage_id": record.storage_id if record else None,
                "filtered_pairs_data_version": record.data_version if record else None,
                # An upstream materialized after the pairs: the shard changed since filtering.
                "upstream_newer_than_pairs": bool(
                    record
                    and any(
                        upstream[name]["storage_id"] > record.storage_id  # type: ignore[operator]
                        for name in FILTER_INPUTS
                        if name in upstream
                    )
                ),
                "upstream": upstream,
            }
        )
    return inputs
