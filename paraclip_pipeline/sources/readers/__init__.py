"""Read one caption shard (LAION Parquet, JSONL or two-file) into ``RAW_CAPTIONS_SCHEMA``.

One module per format (``laion_parquet``, ``jsonl``, ``two_file``), each returning the
source columns (``parsed``); ``cleaning`` (caption cleaning and ``input_issue``),
``caption_ids`` (the stable id rule) and ``shard`` (``read_shard``: the format's reader,
then cleaning, ids and image-path checks). Each module's docstring states its rules; the
public names are exported by ``paraclip_pipeline.sources``.
"""
