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


def _record_commits(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, int]]:
    """(time, answers in the commit) for every cache commit."""
    commits: list[tuple[float, int]] = []
    real_commit = ParaphraseCache.commit

    def commit(cache: ParaphraseCache, answers: Mapping[str, CachedAnswer]) -> Path | None:
        commits.append((time.monotonic(), len(answers)))
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
        commits = _record_commits(monkeypatch)
        result = run_paraphrase_stage(
            stage1_rows(texts), stage=1, config=config, cache_dir=tmp_path, backend=backend
        )
        backend.close()
    assert result.stats.failures == 0
    sizes = [size for _, size in commits]
    assert sizes == [8] * 30  # every chunk_size answers, none later
    assert script.peak_in_flight == config.concurrency


def test_requests_keep_going_while_the_engine_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window's loop runs beside the engine: answers that arrive while a chunk is being
    committed are replaced at once, so the server never idles during a commit."""
    texts = [f"a boat on a lake, take {index}" for index in range(64)]
    script = FakeServerScript(latency_s=0.2)
    at_commit_end: list[int] = []
    real_commit = ParaphraseCache.commit

    def slow_commit(cache: ParaphraseCache, answers: Mapping[str, CachedAnswer]) -> Path | None:
        time.sleep(0.05)
        at_commit_end.append(script.in_flight)
        return real_commit(cache, answers)

    monkeypatch.setattr(ParaphraseCache, "commit", slow_commit)
    with FakeOpenAIServer(script) as server:
        config = _config(server, concurrency=8, chunk_size=8, commit_interval_s=60)
        backend = OpenAICompatibleBackend(config)
        result = run_paraphrase_stage(
            stage1_rows(texts), stage=1, config=config, cache_dir=tmp_path, backend=backend
        )
        backend.close()
    assert result.stats.failures == 0
    # While unstarted requests remain, the server holds a full window during every commit.
    assert at_commit_end == [8] * 7 + [0]


def test_a_slow_trickle_is_still_committed_every_few_seconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = [f"a cat on a sofa, take {index}" for index in range(60)]
    with FakeOpenAIServer(FakeServerScript(latency_s=0.05, latency_sigma=0.5)) as server:
        config = _config(server, concurrency=4, chunk_size=1000, commit_interval_s=0.2)
        backend = OpenAICompatibleBackend(config)
        commits = _record_commits(monkeypatch)
        started = time.monotonic()
        run_paraphrase_stage(
            stage1_rows(texts), stage=1, config=config, cache_dir=tmp_path, backend=backend
        )
        backend.close()
    times = [started] + [at for at, _ in commits]
    assert sum(size for _, size in commits) == len(texts)
    assert len(commits) >= 3
    # A batch closes 0.2 s after its first answer; allow one answer's latency of slack.
    assert max(b - a for a, b in pairwise(times)) < 0.2 + 0.5


def test_a_chunk_larger_than_the_window_fills_without_waiting_for_the_timer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = [f"a bird on a wire, take {index}" for index in range(64)]
    with FakeOpenAIServer(FakeServerScript(latency_s=0.02)) as server:
        config = _config(server, concurrency=4, chunk_size=64, commit_interval_s=60)
        backend = OpenAICompatibleBackend(config)
        commits = _record_commits(monkeypatch)
        result = run_paraphrase_stage(
            stage1_rows(texts), stage=1, config=config, cache_dir=tmp_path, backend=backend
        )
        backend.close()
    assert [size for _, size in commits] == [64]
    assert result.stats.wall_s < 10  # 16 rounds of 20 ms, not the 60 s commit timer
