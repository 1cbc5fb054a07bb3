"""One dynamic partition per caption shard; every per-shard asset shares it."""

import dagster as dg

caption_shards = dg.DynamicPartitionsDefinition(name="caption_shards")
