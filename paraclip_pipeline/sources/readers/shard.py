"""One shard, whatever its format, into ``RAW_CAPTIONS_SCHEMA``: the format's reader, then
caption cleaning, caption ids and image-path checks.

Image paths
    A relative ``image_path`` resolves against the shard's directory, an absolute one is
    taken as is; either must stay inside ``image_root`` (default: the shard's directory)
    after lexical normalisation and must name an existing file. Otherwise the row is kept
    with a null ``image_path`` and one WARNING per shard lists the rows and reasons;
    ``input_issue`` is not touched because the caption itself is fine.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Callable

import pyarrow as pa
from upath import UPath

from paraclip_pipeline import schema
from paraclip_pipeline.sources.discover import ShardFile, ShardFormat
from paraclip_pipeline.sources.readers.caption_ids import caption_ids
from paraclip_pipeline.sources.readers.cleaning import (
    DEFAULT_MAX_CAPTION_CHARS,
    clean_captions,
    clean_metadata,
)
from paraclip_pipeline.sources.readers.jsonl import read_jsonl
from paraclip_pipeline.sources.readers.laion_parquet import read_laion_parquet
from paraclip_pipeline.sources.readers.parsed import EMBEDDING_TYPE, ParsedShard, ShardReadError
from paraclip_pipeline.sources.readers.two_file import read_two_file
from paraclip_pipeline.sources.shard_keys import validate_shard_key

logger = logging.getLogger(__name__)

_MAX_LOGGED_IMAGE_PROBLEMS = 5

_READERS: dict[ShardFormat, Callable[[UPath], ParsedShard]] = {
    "laion_parquet": read_laion_parquet,
    "jsonl": read_jsonl,
    "two_file": read_two_file,
}


def _resolve_image_path(
    raw: str, shard_dir: UPath, allowed_root: str
) -> tuple[str | None, str | None]:
    """(resolved path, None) or (None, why the path was dropped)."""
    if "://" in raw:
        return None, "is a URI, not a path in the shard's tree"
    joined = raw if raw.startswith("/") else posixpath.join(shard_dir.path, raw)
    normalized = posixpath.normpath(joined)
    if normalized != allowed_root and not normalized.startswith(allowed_root.rstrip("/") + "/"):
        return None, f"escapes {allowed_root}"
    target = shard_dir.with_segments(normalized)
    if not target.is_file():
        return None, "does not exist"
    return str(target), None


def _checked_image_paths(
    shard_key: str,
    raw_paths: list[str | None],
    source_rows: list[int],
    shard_dir: UPath,
    allowed_root: str,
) -> pa.Array:
    """Resolved image paths, null where missing or rejected; one warning lists rejections."""
    image_paths: list[str | None] = []
    dropped: list[str] = []
    for source_row, raw_path in zip(source_rows, raw_paths, strict=True):
        if raw_path is None:
            image_paths.append(None)
            continue
        resolved, problem = _resolve_image_path(raw_path, shard_dir, allowed_root)
        image_paths.append(resolved)
        if problem is not None:
            dropped.append(f"row {source_row} {raw_path!r} {problem}")
    if dropped:
        logger.warning(
            "shard %s: %d image path(s) set to null: %s",
            shard_key,
            len(dropped),
            "; ".join(dropped[:_MAX_LOGGED_IMAGE_PROBLEMS]),
        )
    return pa.array(image_paths, pa.string())


def read_shard(
    shard: ShardFile,
    *,
    max_caption_chars: int = DEFAULT_MAX_CAPTION_CHARS,
    image_root: str | None = None,
) -> pa.Table:
    """Read ``shard`` into a table with exactly ``schema.RAW_CAPTIONS_SCHEMA``.

    ``image_root`` bounds where image paths may point (default: the shard's directory);
    pass the dataset root when images live beside the shard directory, as the demo's
    ``data/images`` does. Raises ShardReadError for unreadable or empty shards.
    """
    key = validate_shard_key(shard.key)
    if max_caption_chars < 1:
        raise ValueError(f"max_caption_chars must be positive, got {max_caption_chars}")
    source = UPath(shard.path).absolute()
    reader = _READERS.get(shard.format)
    if reader is None:
        raise ShardReadError(f"{source}: unknown shard format {shard.format!r}")
    parsed = reader(source)
    row_count = len(parsed.source_rows)
    if row_count == 0:
        raise ShardReadError(f"{source} has no rows")

    sample_ids = clean_metadata(parsed.sample_ids)
    source_rows = parsed.source_rows.to_pylist()
    texts, issues = clean_captions(parsed.texts, parsed.text_undecodable, max_caption_chars)
    shard_dir = source if shard.format == "two_file" else source.parent
    allowed_root = posixpath.normpath(
        (UPath(image_root).absolute() if image_root is not None else shard_dir).path
    )
    image_paths = _checked_image_paths(
        key, clean_metadata(parsed.image_paths).to_pylist(), source_rows, shard_dir, allowed_root
    )
    columns = {
        schema.CAPTION_ID: caption_ids(key, sample_ids.to_pylist(), source_rows),
        schema.SHARD: pa.repeat(pa.scalar(key), row_count),
        schema.SOURCE_ROW: parsed.source_rows,
        schema.SAMPLE_ID: sample_ids,
        schema.TEXT: texts,
        schema.URL: clean_metadata(parsed.urls),
        schema.NSFW: clean_metadata(parsed.nsfw),
        schema.IMAGE_PATH: image_paths,
        schema.IMAGE_EMBEDDING: parsed.image_embeddings
        if parsed.image_embeddings is not None
        else pa.nulls(row_count, EMBEDDING_TYPE),
        schema.IMAGE_EMBEDDING_MODEL: clean_metadata(parsed.image_embedding_models)
        if parsed.image_embedding_models is not None
        else pa.nulls(row_count, pa.string()),
        schema.INPUT_ISSUE: issues,
    }
    return pa.table(columns, schema=schema.RAW_CAPTIONS_SCHEMA)
