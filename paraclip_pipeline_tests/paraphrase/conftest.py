"""Fixtures for the paraphrase tests: the scripted OpenAI-compatible server."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from paraclip_pipeline_tests.paraphrase.fake_openai_server import (
    FakeOpenAIServer,
    FakeServerScript,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def fake_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(FakeServerScript(retry_after_s=1.0, timeout_sleep_s=1.5)) as server:
        yield server
