"""Caption shard readers: LAION Parquet, JSONL and the two-file format, normalised to one schema."""

from paraclip_pipeline.sources.discover import (
    DiscoveryResult,
    ShardFile,
    ShardFormat,
    ShardLocationError,
    ShardNotFoundError,
    discover_shards,
    find_shard,
    shard_content_hash,
)
from paraclip_pipeline.sources.readers.caption_ids import make_caption_id
from paraclip_pipeline.sources.readers.cleaning import (
    DEFAULT_MAX_CAPTION_CHARS,
    INPUT_ISSUES,
    ISSUE_EMPTY,
    ISSUE_INSTRUCTION,
    ISSUE_INVALID_UTF8,
    ISSUE_TOO_LONG,
    clean_caption,
    clean_captions,
)
from paraclip_pipeline.sources.readers.parsed import ShardReadError
from paraclip_pipeline.sources.readers.shard import (
    IMAGE_ESCAPING,
    IMAGE_MISSING,
    IMAGE_NOT_A_PATH,
    IMAGE_PATH_PROBLEMS,
    ImagePathProblem,
    ShardRead,
    ShardStream,
    read_shard,
    read_shard_checked,
    stream_shard,
)
from paraclip_pipeline.sources.shard_keys import (
    InvalidShardKeyError,
    shard_key_from_path,
    validate_shard_key,
)

__all__ = [
    "DEFAULT_MAX_CAPTION_CHARS",
    "IMAGE_ESCAPING",
    "IMAGE_MISSING",
    "IMAGE_NOT_A_PATH",
    "IMAGE_PATH_PROBLEMS",
    "INPUT_ISSUES",
    "ISSUE_EMPTY",
    "ISSUE_INSTRUCTION",
    "ISSUE_INVALID_UTF8",
    "ISSUE_TOO_LONG",
    "DiscoveryResult",
    "ImagePathProblem",
    "InvalidShardKeyError",
    "ShardFile",
    "ShardFormat",
    "ShardLocationError",
    "ShardNotFoundError",
    "ShardRead",
    "ShardReadError",
    "ShardStream",
    "clean_caption",
    "clean_captions",
    "discover_shards",
    "find_shard",
    "make_caption_id",
    "read_shard",
    "read_shard_checked",
    "shard_content_hash",
    "shard_key_from_path",
    "stream_shard",
    "validate_shard_key",
]
