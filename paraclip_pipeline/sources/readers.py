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
# RE2 patterns. Whitespace controls become a space so "red\nbus" does not turn into
# "redbus"; every other C0/C1 control and the byte-order mark is deleted.
_WHITESPACE_CONTROLS = r"[\t\n\x{0b}\x{0c}\r\x{1c}-\x{1f}\x{85}\x{2028}\x{2029}]"
_OTHER_CONTROLS = r"[\x{00}-\x{08}\x{0e}-\x{1b}\x{7f}-\x{84}\x{86}-\x{9f}\x{feff}]"
_MAX_LOGGED_IMAGE_PROBLEMS = 5


class ShardReadError(ValueError):
    """A shard that cannot be read; the message names the file and the row/line/column."""


@dataclass
class _ParsedShard:
    """Columns straight from the source (valid UTF-8), before hygiene, ids and path checks."""

    source_rows: pa.Array
    texts: pa.Array
    text_undecodable: pa.Array  # True where the caption's source bytes were not valid UTF-8
    sample_ids: pa.Array
    urls: pa.Array
    nsfw: pa.Array
    image_paths: pa.Array
    image_embeddings: pa.Array | None = None
    image_embedding_models: pa.Array | None = None


def _strings_from_python(values: list[str | None]) -> tuple[pa.Array, pa.Array]:
    """A string array with lone surrogates (undecodable input bytes) replaced by U+FFFD,
    and a bool array saying which values had any."""
    replaced: list[str | None] = []
    undecodable: list[bool] = []
    for value in values:
        if value is None:
            replaced.append(None)
            undecodable.append(False)
            continue
        fixed, count = _SURROGATES.subn("\ufffd", value)
        replaced.append(fixed)
        undecodable.append(count > 0)
    return pa.array(replaced, pa.string()), pa.array(undecodable, pa.bool_())


def _strings_from_arrow(column: pa.ChunkedArray) -> tuple[pa.Array, pa.Array]:
    """Like ``_strings_from_python`` for an Arrow string or integer column.

    Parquet does not validate UTF-8, so a column is checked once and only a column with
    bad bytes takes the slow per-value path.
    """
    as_string = column.cast(pa.string()).combine_chunks()
    try:
        as_string.validate(full=True)
    except pa.ArrowInvalid:
        raw_values = column.cast(pa.large_binary()).to_pylist()
        return _strings_from_python(
            [None if raw is None else raw.decode("utf-8", "surrogateescape") for raw in raw_values]
        )
    return as_string, pa.repeat(pa.scalar(False), len(as_string))


def clean_captions(
    texts: pa.Array, undecodable: pa.Array, max_caption_chars: int = DEFAULT_MAX_CAPTION_CHARS
) -> tuple[pa.Array, pa.Array]:
    """Cleaned captions (nulls become "") and their ``input_issue`` (see module docstring)."""
    spaced = pc.replace_substring_regex(
        pc.fill_null(texts, ""), pattern=_WHITESPACE_CONTROLS, replacement=" "
    )
    without_controls = pc.replace_substring_regex(spaced, pattern=_OTHER_CONTROLS, replacement="")
    # NFC after deleting controls, so a control between a letter and its accent cannot block
    # the composition.
    cleaned = pc.utf8_trim_whitespace(pc.utf8_normalize(without_controls, form="NFC"))
    lengths = pc.utf8_length(cleaned)
    issues = pc.case_when(
        pc.make_struct(pc.equal(lengths, 0), undecodable, pc.greater(lengths, max_caption_chars)),
        pa.scalar(ISSUE_EMPTY),
        pa.scalar(ISSUE_INVALID_UTF8),
        pa.scalar(ISSUE_TOO_LONG),
    )
    return cleaned, issues


def clean_caption(
    raw: str | None, max_caption_chars: int = DEFAULT_MAX_CAPTION_CHARS
) -> tuple[str, str | None]:
    """``clean_captions`` for one Python string (lone surrogates count as undecodable bytes)."""
    texts, undecodable = _strings_from_python([raw])
    cleaned, issues = clean_captions(texts, undecodable, max_caption_chars)
    return cleaned[0].as_py(), issues[0].as_py()


def _clean_metadata(values: pa.Array) -> pa.Array:
    """Ids, URLs, paths: surrounding whitespace stripped, blank -> null."""
    trimmed = pc.utf8_trim_whitespace(values)
    return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)


def _row_key(sample_id: str | None, source_row: int) -> str:
    return f"sample:{sample_id}" if sample_id is not None else f"row:{source_row}"


def _hashed_caption_id(shard_key: str, row_key: str, occurrence: int) -> str:
    material = f"{shard_key}\x1f{row_key}\x1f{occurrence}".encode()
    return hashlib.blake2b(material, digest_size=8).hexdigest()


def make_caption_id(shard_key: str, sample_id: str | None, source_row: int, occurrence: int) -> str:
    """The caption id rule of the module docstring."""
    return _hashed_caption_id(shard_key, _row_key(sample_id, source_row), occurrence)


def _caption_ids(shard_key: str, sample_ids: list[str | None], source_rows: list[int]) -> list[str]:
    occurrences: dict[str, int] = {}
    caption_ids: list[str] = []
    for sample_id, source_row in zip(sample_ids, source_rows, strict=True):
        row_key = _row_key(sample_id, source_row)
        occurrence = occurrences.get(row_key, 0)
        occurrences[row_key] = occurrence + 1
        caption_ids.append(_hashed_caption_id(shard_key, row_key, occurrence))
    return caption_ids


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

    row_count = table.num_rows

    def strings(name: str) -> pa.Array:
        if name not in table.column_names:
            return pa.nulls(row_count, pa.string())
        return _strings_from_arrow(table.column(name))[0]

    embeddings: pa.Array | None = None
    models: pa.Array | None = None
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
    texts, text_undecodable = _strings_from_arrow(table.column(LAION_TEXT))
    return _ParsedShard(
        source_rows=pa.array(range(row_count), pa.int64()),
        texts=texts,
        text_undecodable=text_undecodable,
        sample_ids=strings(LAION_SAMPLE_ID),
        urls=strings(LAION_URL),
        nsfw=strings(LAION_NSFW),
        image_paths=strings(schema.IMAGE_PATH),
        image_embeddings=embeddings,
        image_embedding_models=models,
    )


# ---- text formats --------------------------------------------------------------------


def _read_lines(path: UPath) -> list[str]:
    """Decoded lines, split on LF only (CR of CRLF dropped).

    Splitting on LF alone keeps U+2028 or a form feed inside a caption from shifting the
    line pairing of the two-file format; a final LF adds no phantom line. Undecodable bytes
    survive as lone surrogates (``surrogateescape``) so hygiene can flag them.
    """
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


def _parsed_from_python(
    source_rows: list[int],
    texts: list[str | None],
    sample_ids: list[str | None],
    urls: list[str | None],
    nsfw: list[str | None],
    image_paths: list[str | None],
) -> _ParsedShard:
    text_array, text_undecodable = _strings_from_python(texts)
    return _ParsedShard(
        source_rows=pa.array(source_rows, pa.int64()),
        texts=text_array,
        text_undecodable=text_undecodable,
        sample_ids=_strings_from_python(sample_ids)[0],
        urls=_strings_from_python(urls)[0],
        nsfw=_strings_from_python(nsfw)[0],
        image_paths=_strings_from_python(image_paths)[0],
    )


def _read_jsonl(path: UPath) -> _ParsedShard:
    source_rows: list[int] = []
    texts: list[str | None] = []
    sample_ids: list[str | None] = []
    urls: list[str | None] = []
    nsfw: list[str | None] = []
    image_paths: list[str | None] = []
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
        source_rows.append(line_index)
        texts.append(
            _json_string(_json_field(record, ("caption", "text"), where), "caption", where)
        )
        sample_ids.append(
            _json_string(
                _json_field(record, ("id", "sample_id"), where), "id", where, allow_integer=True
            )
        )
        urls.append(_json_string(record.get("url"), "url", where))
        nsfw.append(_json_string(record.get("nsfw"), "nsfw", where))
        image_paths.append(_json_string(record.get("image_path"), "image_path", where))
    return _parsed_from_python(source_rows, texts, sample_ids, urls, nsfw, image_paths)


def _read_two_file(directory: UPath) -> _ParsedShard:
    captions = _read_lines(directory / TWO_FILE_CAPTIONS)
    sample_ids = _read_lines(directory / TWO_FILE_IDS)
    if len(captions) != len(sample_ids):
        raise ShardReadError(
            f"{directory}: {TWO_FILE_CAPTIONS} has {len(captions)} lines but {TWO_FILE_IDS} has "
            f"{len(sample_ids)}; the files must pair up line by line"
        )
    absent: list[str | None] = [None] * len(captions)
    return _parsed_from_python(
        list(range(len(captions))), list(captions), list(sample_ids), absent, absent, absent
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

    sample_ids = _clean_metadata(parsed.sample_ids)
    source_rows = parsed.source_rows.to_pylist()
    texts, issues = clean_captions(parsed.texts, parsed.text_undecodable, max_caption_chars)
    shard_dir = source if shard.format == "two_file" else source.parent
    allowed_root = posixpath.normpath(
        (UPath(image_root).absolute() if image_root is not None else shard_dir).path
    )
    image_paths = _checked_image_paths(
        key, _clean_metadata(parsed.image_paths).to_pylist(), source_rows, shard_dir, allowed_root
    )
    columns = {
        schema.CAPTION_ID: _caption_ids(key, sample_ids.to_pylist(), source_rows),
        schema.SHARD: pa.repeat(pa.scalar(key), row_count),
        schema.SOURCE_ROW: parsed.source_rows,
        schema.SAMPLE_ID: sample_ids,
        schema.TEXT: texts,
        schema.URL: _clean_metadata(parsed.urls),
        schema.NSFW: _clean_metadata(parsed.nsfw),
        schema.IMAGE_PATH: image_paths,
        schema.IMAGE_EMBEDDING: parsed.image_embeddings
        if parsed.image_embeddings is not None
        else pa.nulls(row_count, _EMBEDDING_TYPE),
        schema.IMAGE_EMBEDDING_MODEL: _clean_metadata(parsed.image_embedding_models)
        if parsed.image_embedding_models is not None
        else pa.nulls(row_count, pa.string()),
        schema.INPUT_ISSUE: issues,
    }
    return pa.table(columns, schema=schema.RAW_CAPTIONS_SCHEMA)
