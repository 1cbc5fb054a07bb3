"""Asset names, as plain strings: one home for the wiring (``defs``) and its readers (``lineage``).

A per-shard asset's Parquet files live under ``<storage root>/assets/<name>/``, so the
names are also directory names; ``lineage`` reads them without importing Dagster wiring.
"""

RAW_CAPTIONS = "raw_captions"
STAGE1_PARAPHRASES = "stage1_paraphrases"
STAGE2_PARAPHRASES = "stage2_paraphrases"
FILTERED_PAIRS = "filtered_pairs"
IMAGE_EMBEDDINGS = "image_embeddings"
TEXT_ENCODER_CHECKPOINT = "text_encoder_checkpoint"
BENCHMARK_REPORT = "benchmark_report"
# The dynamic partitions definition: one partition per caption shard.
CAPTION_SHARDS = "caption_shards"
# Not an asset: the rows filtered_pairs rejected, a sibling Parquet per shard beside it.
FILTERED_PAIRS_REJECTED = "filtered_pairs_rejected"

# filtered_pairs' checks that gate training, per partition: a shard whose latest output
# failed one is quarantined (left out of training) until a later output passes.
SCHEMA_CHECK = "schema_matches"
NO_NULL_TEXT_CHECK = "no_null_text"
UNIQUE_IDS_CHECK = "unique_caption_ids"
PASS_RATE_CHECK = "pass_rate_within_bounds"
TRAINING_GATE_CHECKS = (SCHEMA_CHECK, NO_NULL_TEXT_CHECK, UNIQUE_IDS_CHECK, PASS_RATE_CHECK)
