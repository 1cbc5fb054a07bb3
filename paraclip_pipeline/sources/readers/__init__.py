"""Read one caption shard (LAION Parquet, JSONL or two-file) into ``RAW_CAPTIONS_SCHEMA``.

One module per format (``laion_parquet``, ``jsonl``, ``two_file``), each returning the
source columns (``parsed``); ``cleaning`` (caption cleaning and ``input_issue``),
``caption_ids`` (the stable id rule) and ``shard`` (``read_shard``: the format's reader,
then cleaning, ids and image-path checks). Each module's docstring states its rules.
"""

from paraclip_pipeline.sources.readers.caption_ids import make_caption_id
from paraclip_pipeline.sources.readers.cleaning import (
    DEFAULT_MAX_CAPTION_CHARS,
    INPUT_ISSUES,
    ISSUE_EMPTY,
    ISSUE_INVALID_UTF8,
    ISSUE_TOO_LONG,
    clean_caption,
    clean_captions,
)
from paraclip_pipeline.sources.readers.parsed import ShardReadError
from paraclip_pipeline.sources.readers.shard import read_shard

__all__ = [
    "DEFAULT_MAX_CAPTION_CHARS",
    "INPUT_ISSUES",
    "ISSUE_EMPTY",
    "ISSUE_INVALID_UTF8",
    "ISSUE_TOO_LONG",
    "ShardReadError",
    "clean_caption",
    "clean_captions",
    "make_caption_id",
    "read_shard",
]
