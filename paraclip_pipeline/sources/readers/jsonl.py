"""JSONL shards: one object per line.

``caption`` or ``text``, and optionally ``id`` or ``sample_id`` (string or integer),
``url``, ``image_path`` or ``file_name`` (COCO's annotation files name the image so:
``{"id", "image_id", "file_name", "caption"}``; ``image_id`` adds nothing to the file
name), ``nsfw``; other keys are ignored and whitespace-only lines are skipped. A broken
line or a wrong JSON type fails the read naming the line. Read as a stream of
``batch_rows``-row batches.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from upath import UPath

from paraclip_pipeline.sources.readers.parsed import (
    ParsedShard,
    ShardReadError,
    iter_lines,
    parsed_from_python,
)
from paraclip_pipeline.storage import STREAM_BATCH_ROWS


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


def iter_jsonl(path: UPath, batch_rows: int = STREAM_BATCH_ROWS) -> Iterator[ParsedShard]:
    columns: list[list[Any]] = [[] for _ in range(6)]
    for line_index, line in enumerate(iter_lines(path)):
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
        values = (
            line_index,
            _json_string(_json_field(record, ("caption", "text"), where), "caption", where),
            _json_string(
                _json_field(record, ("id", "sample_id"), where), "id", where, allow_integer=True
            ),
            _json_string(record.get("url"), "url", where),
            _json_string(record.get("nsfw"), "nsfw", where),
            _json_string(
                _json_field(record, ("image_path", "file_name"), where), "image_path", where
            ),
        )
        for column, value in zip(columns, values, strict=True):
            column.append(value)
        if len(columns[0]) >= batch_rows:
            yield parsed_from_python(*columns)
            columns = [[] for _ in range(6)]
    if columns[0]:
        yield parsed_from_python(*columns)
