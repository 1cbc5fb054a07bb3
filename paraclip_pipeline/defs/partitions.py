"""One dynamic partition per caption shard; every per-shard asset shares it."""

import dagster as dg

from paraclip_pipeline.asset_names import CAPTION_SHARDS

caption_shards = dg.DynamicPartitionsDefinition(name=CAPTION_SHARDS)

# Training and the report read every shard's partition at once.
ALL_SHARDS = dg.AssetIn(
    partition_mapping=dg.AllPartitionMapping(),
    # A shard that failed (bad input) must not block training on the others; the
    # manifest lists exactly which shards were used.
    metadata={"allow_missing_partitions": True},
)
