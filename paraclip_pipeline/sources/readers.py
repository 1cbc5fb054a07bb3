"""Read one caption shard (LAION Parquet, JSONL or two-file) into ``RAW_CAPTIONS_SCHEMA``.

Formats
    * LAION Parquet: ``TEXT`` (required, string), ``SAMPLE_ID`` (int or string), ``URL``,
      ``NSFW``, ``image_path``, ``image_embedding_model`` (strings) and ``image_embedding``
      (list of floats; needs ``image_embedding_model``) are optional. ``HEIGHT``, ``WIDTH``,
      ``LICENSE`` and ``similarity`` are LAION metadata that the pipeline does not carry.
    * JSONL: one object per line with ``caption`` or ``text``, and optionally ``id`` or
      ``sample_id`` (string or integer), ``url``, ``image_path``, ``nsfw``; other keys are
      ignored and whitespace-only lines are skipped.
    * Two-file: ``captions.txt`` and ``img_ids.txt``, paired line by line.

``source_row``
    The 0-based row of a Parquet file, or the 0-based line of a text file, so a row can
    always be found again in its source.

``caption_id``
    16 hex characters of blake2b over ``(shard key, row key, occurrence)``: the row key is
    ``sample:<SAMPLE_ID>`` when the row has a sample id and ``row:<source_row>`` otherwise,
    and the occurrence counts earlier rows of the shard with the same row key (duplicate
    sample ids stay distinct). Reading the same file always gives the same ids; ids of rows
    with a sample id survive edits elsewhere in the file, row-keyed ids do not. The shard
    key is part of the hash, so ids are unique across shards.

Caption hygiene (rows are never dropped)
    Text is NFC-normalised; line breaks, tabs and other whitespace controls become spaces,
    remaining control characters and byte-order marks are deleted, and the ends are
    stripped. ``input_issue`` says why a kept caption is unusable: ``empty`` (nothing
    left), ``invalid_utf8`` (undecodable bytes, decoded with U+FFFD replacement) or
    ``too_long`` (more characters than ``max_caption_chars``; nothing is truncated).

Image paths
    A relative ``image_path`` resolves against the shard's directory, an absolute one is
    taken as is; either must stay inside ``image_root`` (default: the shard's directory)
    after lexical normalisation and must name an existing file. Otherwise the row is kept
    with a null ``image_path`` and one WARNING per shard lists the rows and reasons;
    ``input_issue`` is not touched because the caption itself is fine.
"""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from upath import UPath

from paraclip_pipeline import schema
from paraclip_pipeline.sources.discover import (
    TWO_FILE_CAPTIONS,
    TWO_FILE_IDS,
    ShardFile,
    ShardFormat,
)
from paraclip_pipeline.sources.shard_keys import validate_shard_key

logger = logging.getLogger(__name__)

DEFAULT_MAX_CAPTION_CHARS = 2000
ISSUE_EMPTY = "empty"
ISSUE_INVALID_UTF8 = "invalid_utf8"
ISSUE_TOO_LONG = "too_long"
INPUT_ISSUES = (ISSUE_EMPTY, ISSUE_INVALID_UTF8, ISSUE_TOO_LONG)

LAION_TEXT = "TEXT"
LAION_SAMPLE_ID = "SAMPLE_ID"
LAION_URL = "URL"
LAION_NSFW = "NSFW"

_EMBEDDING_TYPE = pa.list_(pa.float32())
_SURROGATES = re.compile("[\ud800-\udfff]")
_WHITESPACE_CONTROLS = "\t\n\v\f\r\x1c\x1d\x1e\x1f\x85\u2028\u2029"
# Whitespace controls become a space so "red\nbus" does not turn into "redbus".
_CONTROL_TRANSLATION = {
    **{code: None for code in [*range(0x20), *range(0x7F, 0xA0), 0xFEFF]},
    **{ord(character): " " for character in _WHITESPACE_CONTROLS},
}
_MAX_LOGGED_IMAGE_PROBLEMS = 5


class ShardReadError(ValueError):
    """A shard that cannot be read; the message names the file and the row/line/column."""


@dataclass
class _ParsedShard:
    """Column lists straight from the source, before hygiene, ids and path checks.

    Strings may hold lone surrogates: undecodable bytes, decoded with ``surrogateescape``
    so hygiene can flag them.
    """

    source_rows: list[int]
    sample_ids: list[str | None]
    texts: list[str | None]
    urls: list[str | None]
    nsfw: list[str | None]
    image_paths: list[str | None]
    image_embeddings: pa.Array | None = None
    image_embedding_models: list[str | None] | None = None


def _replace_undecodable(text: str) -> tuple[str, bool]:
    """Turn lone surrogates (undecodable input bytes) into U+FFFD; report whether any existed."""
    replaced, count = _SURROGATES.subn("\ufffd", text)
    return replaced, count > 0


def clean_caption(raw: str | None, max_caption_chars: int) -> tuple[str, str | None]:
    """The cleaned caption and its ``input_issue`` (None when usable). See module docstring."""
    text, had_undecodable = _replace_undecodable(raw or "")
    text = unicodedata.normalize("NFC", text).translate(_CONTROL_TRANSLATION).strip()
    if not text:
        return text, ISSUE_EMPTY
    if had_undecodable:
        return text, ISSUE_INVALID_UTF8
    if len(text) > max_caption_chars:
        return text, ISSUE_TOO_LONG
    return text, None


def _clean_field(raw: str | None) -> str | None:
    """Metadata strings (ids, URLs, paths): undecodable bytes replaced, blank -> null."""
    if raw is None:
        return None
    text = _replace_undecodable(raw)[0].strip()
    return text or None


def make_caption_id(shard_key: str, sample_id: str | None, source_row: int, occurrence: int) -> str:
    """The caption id rule of the module docstring."""
    row_key = f"sample:{sample_id}" if sample_id is not None else f"row:{source_row}"
    material = f"{shard_key}\x1f{row_key}\x1f{occurrence}".encode()
    return hashlib.blake2b(material, digest_size=8).hexdigest()


# ---- LAION Parquet -------------------------------------------------------------------


def _is_string_like(data_type: pa.DataType) -> bool:
    return (
        pa.types.is_string(data_type)
        or pa.types.is_large_string(data_type)
        or pa.types.is_string_view(data_type)
    )


def _is_float_list(data_type: pa.DataType) -> bool:
    return (
        pa.types.is_list(data_type)
        or pa.types.is_large_list(data_type)
        or pa.types.is_fixed_size_list(data_type)
    ) and pa.types.is_floating(data_type.value_type)


_STRING = ("a string", _is_string_like)
_LAION_COLUMN_TYPES: dict[str, tuple[str, Callable[[pa.DataType], bool]]] = {
    LAION_TEXT: _STRING,
    LAION_SAMPLE_ID: (
        "an integer or a string",
        lambda data_type: pa.types.is_integer(data_type) or _is_string_like(data_type),
    ),
    LAION_URL: _STRING,
    LAION_NSFW: _STRING,
    schema.IMAGE_PATH: _STRING,
    schema.IMAGE_EMBEDDING_MODEL: _STRING,
    schema.IMAGE_EMBEDDING: ("a list of floats", _is_float_list),
}


def _decoded_strings(column: pa.ChunkedArray) -> list[str | None]:
    """Python strings of a string column; invalid UTF-8 bytes survive as lone surrogates.

    Parquet does not validate UTF-8, and ``to_pylist`` on a bad value would raise, so the
    bytes are decoded here with ``surrogateescape``.
    """
    if pa.types.is_integer(column.type):
        return [None if value is None else str(value) for value in column.to_pylist()]
    as_bytes = column.cast(pa.large_binary()).to_pylist()
    return [
        None if value is None else value.decode("utf-8", "surrogateescape") for value in as_bytes
    ]


def _read_laion_parquet(path: UPath) -> _ParsedShard:
    try:
        with path.open("rb") as handle:
            parquet_file = pq.ParquetFile(handle)
            available = parquet_file.schema_arrow
            wanted = [name for name in _LAION_COLUMN_TYPES if name in available.names]
            if LAION_TEXT not in wanted:
                raise ShardReadError(
                    f"{path}: required caption column {LAION_TEXT!r} is missing; "
                    f"columns found: {', '.join(available.names) or '(none)'}"
                )
            for name in wanted:
                description, accepts = _LAION_COLUMN_TYPES[name]
                data_type = available.field(name).type
                if not accepts(data_type):
                    raise ShardReadError(
                        f"{path}: column {name!r} has type {data_type}, expected {description}"
                    )
            table = parquet_file.read(columns=wanted)
    except (pa.ArrowException, OSError) as error:
        raise ShardReadError(f"{path}: not a readable Parquet file ({error})") from error

    def strings(name: str) -> list[str | None]:
        if name not in table.column_names:
            return [None] * table.num_rows
        return _decoded_strings(table.column(name))

    embeddings: pa.Array | None = None
    models: list[str | None] | None = None
    if schema.IMAGE_EMBEDDING in table.column_names:
        if schema.IMAGE_EMBEDDING_MODEL not in table.column_names:
            raise ShardReadError(
                f"{path}: column {schema.IMAGE_EMBEDDING!r} needs a "
                f"{schema.IMAGE_EMBEDDING_MODEL!r} column naming the image model"
            )
        embeddings = table.column(schema.IMAGE_EMBEDDING).cast(_EMBEDDING_TYPE).combine_chunks()
        dimensions = pc.unique(pc.list_value_length(embeddings).drop_null()).to_pylist()
        if len(dimensions) > 1:
            raise ShardReadError(
                f"{path}: column {schema.IMAGE_EMBEDDING!r} mixes embedding sizes "
                f"{sorted(dimensions)}; one shard must use one image model"
            )
        models = strings(schema.IMAGE_EMBEDDING_MODEL)
    return _ParsedShard(
        source_rows=list(range(table.num_rows)),
        sample_ids=strings(LAION_SAMPLE_ID),
        texts=strings(LAION_TEXT),
        urls=strings(LAION_URL),
        nsfw=strings(LAION_NSFW),
        image_paths=strings(schema.IMAGE_PATH),
        image_embeddings=embeddings,
        image_embedding_models=models,
    )


# ---- text formats --------------------------------------------------------------------


def _read_lines(path: UPath) -> list[str]:
    """Lines split on LF only (CR of CRLF dropped), so U+2028 or a form feed inside a caption
    cannot shift the line pairing of the two-file format; no phantom line after a final LF."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ShardReadError(f"{path}: cannot be read ({error})") from error
    data = data.removeprefix(b"\xef\xbb\xbf")
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return [line.removesuffix(b"\r").decode("utf-8", "surrogateescape") for line in lines]


def _json_field(record: dict[str, Any], aliases: tuple[str, ...], where: str) -> Any:
    present = [alias for alias in aliases if alias in record]
    if len(present) > 1:
        raise ShardReadError(f"{where}: has both {' and '.join(map(repr, present))}; keep one")
    return record[present[0]] if present else None


def _json_string(value: Any, name: str, where: str, allow_integer: bool = False) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if allow_integer and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    expected = "a string or an integer" if allow_integer else "a string"
    raise ShardReadError(
        f"{where}: field {name!r} is JSON {type(value).__name__} {value!r:.60}, expected {expected}"
    )


def _read_jsonl(path: UPath) -> _ParsedShard:
    parsed = _ParsedShard([], [], [], [], [], [])
    for line_index, line in enumerate(_read_lines(path)):
        if not line.strip():
            continue
        where = f"{path} line {line_index + 1}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ShardReadError(
                f"{where}: invalid JSON ({error.msg} at column {error.colno})"
            ) from error
        if not isinstance(record, dict):
            raise ShardReadError(f"{where}: expected a JSON object, got {type(record).__name__}")
        if "caption" not in record and "text" not in record:
            raise ShardReadError(
                f"{where}: has neither 'caption' nor 'text'; keys found: {', '.join(record)}"
            )
        parsed.source_rows.append(line_index)
        parsed.texts.append(
            _json_string(_json_field(record, ("caption", "text"), where), "caption", where)
        )
        parsed.sample_ids.append(
            _json_string(
                _json_field(record, ("id", "sample_id"), where), "id", where, allow_integer=True
            )
        )
        parsed.urls.append(_json_string(record.get("url"), "url", where))
        parsed.nsfw.append(_json_string(record.get("nsfw"), "nsfw", where))
        parsed.image_paths.append(_json_string(record.get("image_path"), "image_path", where))
    return parsed


def _read_two_file(directory: UPath) -> _ParsedShard:
    captions = _read_lines(directory / TWO_FILE_CAPTIONS)
    sample_ids = _read_lines(directory / TWO_FILE_IDS)
    if len(captions) != len(sample_ids):
        raise ShardReadError(
            f"{directory}: {TWO_FILE_CAPTIONS} has {len(captions)} lines but {TWO_FILE_IDS} has "
            f"{len(sample_ids)}; the files must pair up line by line"
        )
    count = len(captions)
    return _ParsedShard(
        source_rows=list(range(count)),
        sample_ids=list(sample_ids),
        texts=list(captions),
        urls=[None] * count,
        nsfw=[None] * count,
        image_paths=[None] * count,
    )


_READERS: dict[ShardFormat, Callable[[UPath], _ParsedShard]] = {
    "laion_parquet": _read_laion_parquet,
    "jsonl": _read_jsonl,
    "two_file": _read_two_file,
}


# ---- assembly ------------------------------------------------------------------------


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

    sample_ids = [_clean_field(sample_id) for sample_id in parsed.sample_ids]
    seen: Counter[tuple[str | None, int | None]] = Counter()
    caption_ids: list[str] = []
    for sample_id, source_row in zip(sample_ids, parsed.source_rows, strict=True):
        row_key = (sample_id, None if sample_id is not None else source_row)
        caption_ids.append(make_caption_id(key, sample_id, source_row, seen[row_key]))
        seen[row_key] += 1

    cleaned = [clean_caption(text, max_caption_chars) for text in parsed.texts]

    shard_dir = source if shard.format == "two_file" else source.parent
    allowed_root = posixpath.normpath(
        (UPath(image_root).absolute() if image_root is not None else shard_dir).path
    )
    image_paths: list[str | None] = []
    dropped: list[str] = []
    for source_row, raw_path in zip(parsed.source_rows, parsed.image_paths, strict=True):
        candidate = _clean_field(raw_path)
        if candidate is None:
            image_paths.append(None)
            continue
        resolved, problem = _resolve_image_path(candidate, shard_dir, allowed_root)
        image_paths.append(resolved)
        if problem is not None:
            dropped.append(f"row {source_row} {candidate!r} {problem}")
    if dropped:
        logger.warning(
            "shard %s: %d image path(s) set to null: %s",
            key,
            len(dropped),
            "; ".join(dropped[:_MAX_LOGGED_IMAGE_PROBLEMS]),
        )

    embeddings = (
        parsed.image_embeddings
        if parsed.image_embeddings is not None
        else pa.nulls(row_count, _EMBEDDING_TYPE)
    )
    models = parsed.image_embedding_models or [None] * row_count
    columns = {
        schema.CAPTION_ID: caption_ids,
        schema.SHARD: [key] * row_count,
        schema.SOURCE_ROW: parsed.source_rows,
        schema.SAMPLE_ID: sample_ids,
        schema.TEXT: [text for text, _ in cleaned],
        schema.URL: [_clean_field(url) for url in parsed.urls],
        schema.NSFW: [_clean_field(value) for value in parsed.nsfw],
        schema.IMAGE_PATH: image_paths,
        schema.IMAGE_EMBEDDING: embeddings,
        schema.IMAGE_EMBEDDING_MODEL: [_clean_field(model) for model in models],
        schema.INPUT_ISSUE: [issue for _, issue in cleaned],
    }
    return pa.table(columns, schema=schema.RAW_CAPTIONS_SCHEMA)
