"""The paper authors' two-file shards: ``captions.txt`` and ``img_ids.txt``, paired line by line."""

from __future__ import annotations

from upath import UPath

from paraclip_pipeline.sources.discover import TWO_FILE_CAPTIONS, TWO_FILE_IDS
from paraclip_pipeline.sources.readers.parsed import (
    ParsedShard,
    ShardReadError,
    parsed_from_python,
    read_lines,
)


def read_two_file(directory: UPath) -> ParsedShard:
    captions = read_lines(directory / TWO_FILE_CAPTIONS)
    sample_ids = read_lines(directory / TWO_FILE_IDS)
    if len(captions) != len(sample_ids):
        raise ShardReadError(
            f"{directory}: {TWO_FILE_CAPTIONS} has {len(captions)} lines but {TWO_FILE_IDS} has "
            f"{len(sample_ids)}; the files must pair up line by line"
        )
    absent: list[str | None] = [None] * len(captions)
    return parsed_from_python(
        list(range(len(captions))), list(captions), list(sample_ids), absent, absent, absent
    )
