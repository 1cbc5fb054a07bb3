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
# Not an asset: the rows filtered_pairs rejected, a sibling Parquet per shard beside it.
FILTERED_PAIRS_REJECTED = "filtered_pairs_rejected"
