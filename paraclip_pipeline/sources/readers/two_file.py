"""The paper authors' two-file shards: ``captions.txt`` and ``img_ids.txt``, paired line by line."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import zip_longest

from upath import UPath

from paraclip_pipeline.sources.discover import TWO_FILE_CAPTIONS, TWO_FILE_IDS
from paraclip_pipeline.sources.readers.parsed import (
    ParsedShard,
    ShardReadError,
    iter_lines,
    parsed_from_python,
)
from paraclip_pipeline.storage import STREAM_BATCH_ROWS

_END = object()


def iter_two_file(directory: UPath, batch_rows: int = STREAM_BATCH_ROWS) -> Iterator[ParsedShard]:
    """Both files read side by side; a length mismatch is found when the shorter one ends."""
    captions, sample_ids = [], []
    pairs = zip_longest(
        iter_lines(directory / TWO_FILE_CAPTIONS),
        iter_lines(directory / TWO_FILE_IDS),
        fillvalue=_END,
    )
    line = 0
    for line, (caption, sample_id) in enumerate(pairs):
        if caption is _END or sample_id is _END:
            rest = sum(1 for _ in pairs) + 1
            longer = line + rest
            caption_lines, id_lines = (line, longer) if caption is _END else (longer, line)
            raise ShardReadError(
                f"{directory}: {TWO_FILE_CAPTIONS} has {caption_lines} lines but {TWO_FILE_IDS} "
                f"has {id_lines}; the files must pair up line by line"
            )
        captions.append(caption)
        sample_ids.append(sample_id)
        if len(captions) >= batch_rows:
            yield _batch(line + 1 - len(captions), captions, sample_ids)
            captions, sample_ids = [], []
    if captions:
        yield _batch(line + 1 - len(captions), captions, sample_ids)


def _batch(first_line: int, captions: list[str], sample_ids: list[str]) -> ParsedShard:
    absent: list[str | None] = [None] * len(captions)
    rows = list(range(first_line, first_line + len(captions)))
    return parsed_from_python(rows, list(captions), list(sample_ids), absent, absent, absent)
