"""One shard, whatever its format, into ``RAW_CAPTIONS_SCHEMA``: the format's reader, then
caption cleaning, caption ids and image-path checks.

Image paths
    A relative ``image_path`` resolves against the image root when one is configured
    (``PARACLIP_IMAGE_ROOT``, the ``shard_source`` resource's ``image_root``), else against
    the shard's directory; an absolute one is taken as is. Either must stay inside that
    base directory after lexical normalisation and must name an existing file. Otherwise
    the row is kept with a null ``image_path`` and the problem is reported by reason
    (``not_a_path``: a URI; ``escaping``: outside the base; ``missing``: no such file) in
    ``ShardRead.image_problems``, for the asset to count in its metadata and log once as a
    run event; ``input_issue`` is not touched because the caption itself is fine. With a
    root, the same shard reads the same wherever the shard file lives (issue 13: shards
    moved out of ``data/shards`` lost every image path).

Streaming
    ``stream_shard`` yields the shard in batches of ``batch_rows`` rows (each format's
    reader streams its file), so memory is set by the batch, not the shard; caption ids
    take a first pass over the sample ids (see ``caption_ids``). ``read_shard_checked`` is
    the same stream gathered into one table.
"""

from __future__ import annotations

import posixpath
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from os import PathLike

import pyarrow as pa
from upath import UPath

from paraclip_pipeline import schema
from paraclip_pipeline.sources.discover import ShardFile, ShardFormat
from paraclip_pipeline.sources.readers.caption_ids import (
    CaptionIdAssigner,
    repeated_sample_id_hashes,
)
from paraclip_pipeline.sources.readers.cleaning import (
    DEFAULT_MAX_CAPTION_CHARS,
    clean_captions,
    clean_metadata,
)
from paraclip_pipeline.sources.readers.jsonl import iter_jsonl
from paraclip_pipeline.sources.readers.laion_parquet import iter_laion_parquet
from paraclip_pipeline.sources.readers.parsed import (
    EMBEDDING_TYPE,
    ParsedShard,
    ShardReadError,
)
from paraclip_pipeline.sources.readers.two_file import iter_two_file
from paraclip_pipeline.sources.shard_keys import validate_shard_key
from paraclip_pipeline.storage import STREAM_BATCH_ROWS

IMAGE_NOT_A_PATH = "not_a_path"
IMAGE_ESCAPING = "escaping"
IMAGE_MISSING = "missing"
IMAGE_PATH_PROBLEMS = (IMAGE_NOT_A_PATH, IMAGE_ESCAPING, IMAGE_MISSING)

_READERS: dict[ShardFormat, Callable[[UPath, int], Iterator[ParsedShard]]] = {
    "laion_parquet": iter_laion_parquet,
    "jsonl": iter_jsonl,
    "two_file": iter_two_file,
}


@dataclass(frozen=True)
class ImagePathProblem:
    """One row whose image path was set to null, and why (one of ``IMAGE_PATH_PROBLEMS``)."""

    source_row: int
    path: str
    reason: str

    def __str__(self) -> str:
        return f"row {self.source_row} {self.path!r}: {self.reason}"


@dataclass(frozen=True)
class ShardRead:
    """A read shard: the table and the image paths that could not be used."""

    table: pa.Table
    image_base: str  # the directory relative image paths resolved against
    image_problems: tuple[ImagePathProblem, ...]

    def image_problem_counts(self) -> dict[str, int]:
        """Rows per reason, every reason present (0 when none)."""
        counts = Counter(problem.reason for problem in self.image_problems)
        return {reason: counts[reason] for reason in IMAGE_PATH_PROBLEMS}


def _resolve_image_path(raw: str, base: UPath) -> tuple[str | None, str | None]:
    """(resolved path, None) or (None, the reason it was dropped)."""
    if "://" in raw:
        return None, IMAGE_NOT_A_PATH
    root = posixpath.normpath(base.path)
    normalized = posixpath.normpath(raw if raw.startswith("/") else posixpath.join(root, raw))
    if normalized != root and not normalized.startswith(root.rstrip("/") + "/"):
        return None, IMAGE_ESCAPING
    target = base.with_segments(normalized)
    if not target.is_file():
        return None, IMAGE_MISSING
    return str(target), None


def _checked_image_paths(
    raw_paths: list[str | None], source_rows: list[int], base: UPath
) -> tuple[pa.Array, tuple[ImagePathProblem, ...]]:
    """Resolved image paths (null where absent or unusable) and the unusable ones."""
    image_paths: list[str | None] = []
    problems: list[ImagePathProblem] = []
    for source_row, raw_path in zip(source_rows, raw_paths, strict=True):
        if raw_path is None:
            image_paths.append(None)
            continue
        resolved, reason = _resolve_image_path(raw_path, base)
        image_paths.append(resolved)
        if reason is not None:
            problems.append(ImagePathProblem(source_row, raw_path, reason))
    return pa.array(image_paths, pa.string()), tuple(problems)


@dataclass(frozen=True)
class ShardStream:
    """A shard being read: where its image paths resolve, and its batches (one pass)."""

    image_base: str
    batches: Iterator[tuple[pa.Table, tuple[ImagePathProblem, ...]]]


def stream_shard(
    shard: ShardFile,
    *,
    max_caption_chars: int = DEFAULT_MAX_CAPTION_CHARS,
    image_root: str | PathLike[str] | None = None,
    batch_rows: int = STREAM_BATCH_ROWS,
    spill_dir: str | PathLike[str] | None = None,
) -> ShardStream:
    """``shard`` as tables of at most ``batch_rows`` rows with exactly
    ``schema.RAW_CAPTIONS_SCHEMA``, each with the image paths it could not use.

    ``image_root`` is where relative image paths resolve and absolute ones must stay
    (default: the shard's directory); the demo's is ``data/images``. ``spill_dir`` (an
    existing directory; default: the system's temporary one) takes the caption ids' first
    pass (8 bytes a row) while the stream starts. Raises ShardReadError for unreadable
    shards, and, once read to the end, for empty ones.
    """
    key = validate_shard_key(shard.key)
    if max_caption_chars < 1:
        raise ValueError(f"max_caption_chars must be positive, got {max_caption_chars}")
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be positive, got {batch_rows}")
    source = UPath(shard.path).absolute()
    reader = _READERS.get(shard.format)
    if reader is None:
        raise ShardReadError(f"{source}: unknown shard format {shard.format!r}")
    shard_dir = source if shard.format == "two_file" else source.parent
    image_base = UPath(image_root).absolute() if image_root is not None else shard_dir

    def parsed_batches() -> Iterator[ParsedShard]:
        # Under mimalloc (pyarrow's default, kept where an operator chose it: arrow_pool)
        # freed pages stay for reuse; returned after each batch, raw_captions' peak on
        # bench_data_scale's 5M-row shard went 452-466 -> 441-442 MB (100k rows: 388-397
        # -> 380-388), two runs each. Under jemalloc with no decay this finds nothing.
        for parsed in reader(source, batch_rows):
            yield parsed
            pa.default_memory_pool().release_unused()

    def batches() -> Iterator[tuple[pa.Table, tuple[ImagePathProblem, ...]]]:
        repeated = repeated_sample_id_hashes(
            (clean_metadata(parsed.sample_ids) for parsed in parsed_batches()), spill_dir
        )
        ids = CaptionIdAssigner(key, repeated)
        rows = 0
        for parsed in parsed_batches():
            rows += len(parsed.source_rows)
            yield _table(parsed, key, ids, image_base, max_caption_chars)
        if rows == 0:
            raise ShardReadError(f"{source} has no rows")

    return ShardStream(str(image_base), batches())


def _table(
    parsed: ParsedShard,
    key: str,
    ids: CaptionIdAssigner,
    image_base: UPath,
    max_caption_chars: int,
) -> tuple[pa.Table, tuple[ImagePathProblem, ...]]:
    """One parsed batch cleaned, with caption ids and checked image paths."""
    row_count = len(parsed.source_rows)
    sample_ids = clean_metadata(parsed.sample_ids)
    source_rows = parsed.source_rows.to_pylist()
    texts, issues = clean_captions(parsed.texts, parsed.text_undecodable, max_caption_chars)
    image_refs = clean_metadata(parsed.image_paths)
    image_paths, image_problems = _checked_image_paths(
        image_refs.to_pylist(), source_rows, image_base
    )
    columns = {
        schema.CAPTION_ID: ids.assign(sample_ids, source_rows),
        schema.SHARD: pa.repeat(pa.scalar(key), row_count),
        schema.SOURCE_ROW: parsed.source_rows,
        schema.SAMPLE_ID: sample_ids,
        schema.TEXT: texts,
        schema.URL: clean_metadata(parsed.urls),
        schema.NSFW: clean_metadata(parsed.nsfw),
        schema.IMAGE_PATH: image_paths,
        schema.IMAGE_REF: image_refs,
        schema.IMAGE_EMBEDDING: parsed.image_embeddings
        if parsed.image_embeddings is not None
        else pa.nulls(row_count, EMBEDDING_TYPE),
        schema.IMAGE_EMBEDDING_MODEL: clean_metadata(parsed.image_embedding_models)
        if parsed.image_embedding_models is not None
        else pa.nulls(row_count, pa.string()),
        schema.INPUT_ISSUE: issues,
    }
    return pa.table(columns, schema=schema.RAW_CAPTIONS_SCHEMA), image_problems


def read_shard_checked(
    shard: ShardFile,
    *,
    max_caption_chars: int = DEFAULT_MAX_CAPTION_CHARS,
    image_root: str | PathLike[str] | None = None,
) -> ShardRead:
    """``stream_shard`` gathered into one table, and every image path it could not use."""
    stream = stream_shard(shard, max_caption_chars=max_caption_chars, image_root=image_root)
    tables, problems = [], []
    for table, batch_problems in stream.batches:
        tables.append(table)
        problems.extend(batch_problems)
    return ShardRead(
        table=pa.concat_tables(tables).combine_chunks(),
        image_base=stream.image_base,
        image_problems=tuple(problems),
    )


def read_shard(
    shard: ShardFile,
    *,
    max_caption_chars: int = DEFAULT_MAX_CAPTION_CHARS,
    image_root: str | PathLike[str] | None = None,
) -> pa.Table:
    """``read_shard_checked``'s table alone, for callers that do not report image paths."""
    return read_shard_checked(
        shard, max_caption_chars=max_caption_chars, image_root=image_root
    ).table
