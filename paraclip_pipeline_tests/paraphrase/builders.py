"""Tables the paraphrase tests (and the paraphrase benchmark) build their inputs from."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from paraclip_pipeline import schema


def stage1_rows(texts: Sequence[str], issues: Sequence[str | None] | None = None) -> pa.Table:
    issues = list(issues) if issues is not None else [None] * len(texts)
    return pa.table(
        {
            schema.CAPTION_ID: [f"c{index:04d}" for index in range(len(texts))],
            schema.SHARD: ["shard-00000"] * len(texts),
            schema.TEXT: list(texts),
            schema.INPUT_ISSUE: issues,
        },
        schema=pa.schema(
            [schema.RAW_CAPTIONS_SCHEMA.field(name) for name in schema.STAGE1_INPUT_COLUMNS]
        ),
    )
