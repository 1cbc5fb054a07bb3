"""The openai-compatible client keeps its window full and still commits chunk by chunk."""

from __future__ import annotations

import time
from collections.abc import Mapping
from itertools import pairwise
from pathlib import Path

import pytest

from paraclip_pipeline import schema
from paraclip_pipeline.paraphrase.backends.openai_compatible import OpenAICompatibleBackend
from paraclip_pipeline.paraphrase.cache import CachedAnswer, ParaphraseCache
from paraclip_pipeline.paraphrase.config import ParaphraserConfig
from paraclip_pipeline.paraphrase.engine import run_paraphrase_stage
from paraclip_pipeline_tests.paraphrase.builders import stage1_rows
from paraclip_pipeline_tests.paraphrase.fake_openai_server import (
    FakeOpenAIServer,
    FakeServerScript,
)


def _config(server: FakeOpenAIServer, **overrides: object) -> ParaphraserConfig:
    return ParaphraserConfig(
        backend="openai_compatible", model="fake", base_url=server.base_url, **overrides
    )


def _record_commits(
    monkeypatch: pytest.MonkeyPatch, backend: OpenAICompatibleBackend
) -> list[tuple[float, int, int]]:
    """(time, answers in the commit, requests in flight) for every cache commit."""
    commits: list[tuple[float, int, int]] = []
    real_commit = ParaphraseCache.commit

    def commit(cache: ParaphraseCache, answers: Mapping[str, CachedAnswer]) -> Path | None:
        assert backend.window is not None
        commits.append((time.monotonic(), len(answers), backend.window.in_flight))
        return real_commit(cache, answers)

    monkeypatch.setattr(ParaphraseCache, "commit", commit)
    return commits


def test_512_requests_in_flight_at_once_all_succeed(tmp_path: Path) -> None:
    script = FakeServerScript(hold_until=512)
    texts = [f"photo number {index}" for index in range(512)]
    with FakeOpenAIServer(script) as server:
        config = _config(server, concurrency=512, chunk_size=64, timeout_s=60, max_retries=0)
        backend = OpenAICompatibleBackend(config)
        result = run_paraphrase_stage(
            stage1_rows(texts), stage=1, config=config, cache_dir=tmp_path, backend=backend
        )
        backend.close()
    assert result.stats.failures == 0
    assert set(result.table.column(schema.STATUS_1).to_pylist()) == {"ok"}
    assert script.peak_in_flight == 512  # the server held every answer until all 512 came in
    assert backend.window is not None and backend.window.peak_in_flight == 512


def test_commits_every_chunk_while_the_window_stays_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = [f"a dog in a park, take {index}" for index in range(240)]
    script = FakeServerScript(latency_s=0.02, latency_sigma=1.0)
    with FakeOpenAIServer(script) as server:
        config = _config(server, concurrency=24, chunk_size=8, commit_interval_s=60)
        backend = OpenAICompatibleBackend(config)
        commits = _record_commits(monkeypatch, backend)
        result = run_paraphrase_stage(
            stage1_rows(texts), stage=1, config=config, cache_dir=tmp_path, backend=backend
        )
        backend.close()
    assert result.stats.failures == 0
    sizes = [size for _, size, _ in commits]
    assert sizes == [8] * 30  # every chunk_size answers, none later
    # No drain: while answers remain, the window is refilled to full before each commit.
    committed = 0
    for _, size, in_flight in commits:
        committed += size
        assert in_flight == min(config.concurrency, len(texts) - committed)
    assert script.peak_in_flight == config.concurrency


def test_a_slow_trickle_is_still_committed_every_few_seconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = [f"a cat on a sofa, take {index}" for index in range(60)]
    with FakeOpenAIServer(FakeServerScript(latency_s=0.05, latency_sigma=0.5)) as server:
        config = _config(server, concurrency=4, chunk_size=1000, commit_interval_s=0.2)
        backend = OpenAICompatibleBackend(config)
        commits = _record_commits(monkeypatch, backend)
        started = time.monotonic()
        run_paraphrase_stage(
            stage1_rows(texts), stage=1, config=config, cache_dir=tmp_path, backend=backend
        )
        backend.close()
    times = [started] + [at for at, _, _ in commits]
    assert sum(size for _, size, _ in commits) == len(texts)
    assert len(commits) >= 3
    # A batch closes 0.2 s after its first answer; allow one answer's latency of slack.
    assert max(b - a for a, b in pairwise(times)) < 0.2 + 0.5
