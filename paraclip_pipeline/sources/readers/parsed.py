"""What every format reader hands over: source columns as valid UTF-8, before cleaning.

``source_row``
    The 0-based row of a Parquet file, or the 0-based line of a text file, so a row can
    always be found again in its source.

Readers yield a shard as a sequence of ``ParsedShard`` batches of at most ``batch_rows``
rows, so a 12M-caption shard never sits in memory at once.

Undecodable bytes never fail a read: they become U+FFFD and the row is marked, so
caption cleaning can flag the caption as ``invalid_utf8`` and keep it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
from upath import UPath

EMBEDDING_TYPE = pa.list_(pa.float32())
_SURROGATES = re.compile("[\ud800-\udfff]")


class ShardReadError(ValueError):
    """A shard that cannot be read; the message names the file and the row/line/column."""


@dataclass
class ParsedShard:
    """Source columns (valid UTF-8) before caption cleaning, caption ids and path checks."""

    source_rows: pa.Array
    texts: pa.Array
    text_undecodable: pa.Array  # True where the caption's source bytes were not valid UTF-8
    sample_ids: pa.Array
    urls: pa.Array
    nsfw: pa.Array
    image_paths: pa.Array
    image_embeddings: pa.Array | None = None
    image_embedding_models: pa.Array | None = None


def strings_from_python(values: list[str | None]) -> tuple[pa.Array, pa.Array]:
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


def strings_from_arrow(column: pa.ChunkedArray) -> tuple[pa.Array, pa.Array]:
    """Like ``strings_from_python`` for an Arrow string or integer column.

    Parquet does not validate UTF-8, so a column is checked once and only a column with
    bad bytes takes the slow per-value path.
    """
    as_string = column.cast(pa.string()).combine_chunks()
    try:
        as_string.validate(full=True)
    except pa.ArrowInvalid:
        raw_values = column.cast(pa.large_binary()).to_pylist()
        return strings_from_python(
            [None if raw is None else raw.decode("utf-8", "surrogateescape") for raw in raw_values]
        )
    return as_string, pa.repeat(pa.scalar(False), len(as_string))


def iter_lines(path: UPath) -> Iterator[str]:
    """Decoded lines, split on LF only (CR of CRLF dropped), read as a stream.

    Splitting on LF alone keeps U+2028 or a form feed inside a caption from shifting the
    line pairing of the two-file format; a final LF adds no phantom line. Undecodable bytes
    survive as lone surrogates (``surrogateescape``) so caption cleaning can flag them.
    """
    try:
        handle = path.open("rb")
    except OSError as error:
        raise ShardReadError(f"{path}: cannot be read ({error})") from error
    with handle:
        for number, line in enumerate(handle):
            if number == 0:
                line = line.removeprefix(b"\xef\xbb\xbf")
            yield line.removesuffix(b"\n").removesuffix(b"\r").decode("utf-8", "surrogateescape")


def parsed_from_python(
    source_rows: list[int],
    texts: list[str | None],
    sample_ids: list[str | None],
    urls: list[str | None],
    nsfw: list[str | None],
    image_paths: list[str | None],
) -> ParsedShard:
    text_array, text_undecodable = strings_from_python(texts)
    return ParsedShard(
        source_rows=pa.array(source_rows, pa.int64()),
        texts=text_array,
        text_undecodable=text_undecodable,
        sample_ids=strings_from_python(sample_ids)[0],
        urls=strings_from_python(urls)[0],
        nsfw=strings_from_python(nsfw)[0],
        image_paths=strings_from_python(image_paths)[0],
    )
