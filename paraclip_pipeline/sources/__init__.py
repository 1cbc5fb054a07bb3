"""Caption shard readers: LAION Parquet, JSONL and the two-file format, normalised to one schema."""
