from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import pyarrow as pa
import pytest

from paraclip_pipeline import schema
from paraclip_pipeline_tests.paraphrase.fake_openai_server import (
    FakeOpenAIServer,
    FakeServerScript,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")


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
            [
                schema.RAW_CAPTIONS_SCHEMA.field(name)
                for name in (schema.CAPTION_ID, schema.SHARD, schema.TEXT, schema.INPUT_ISSUE)
            ]
        ),
    )


@pytest.fixture
def fake_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(FakeServerScript(retry_after_s=1.0, timeout_sleep_s=1.5)) as server:
        yield server
