from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pytest

from paraclip_pipeline import schema
from paraclip_pipeline.paraphrase.backends.base import (
    Completion,
    ParaphraseBackend,
    ParaphraseRequest,
)
from paraclip_pipeline.paraphrase.cache import CachedAnswer, ParaphraseCache
from paraclip_pipeline.paraphrase.config import ParaphraserConfig
from paraclip_pipeline.paraphrase.engine import PYTHON_WHITESPACE, run_paraphrase_stage
from paraclip_pipeline.paraphrase.errors import ParaphraseInputError
from paraclip_pipeline_tests.paraphrase.builders import stage1_rows


class BackendCrashed(RuntimeError):
    pass


class RecordingBackend(ParaphraseBackend):
    """Answers "reworded <text>"; optionally crashes on a given generate() call."""

    name = "recording"
    default_model = "recording-v1"

    def __init__(self, config: ParaphraserConfig, crash_on_batch: int | None = None) -> None:
        super().__init__(config)
        self.crash_on_batch = crash_on_batch
        self.batches: list[list[str]] = []

    def _generate(self, requests: Sequence[ParaphraseRequest]) -> list[Completion]:
        if self.crash_on_batch is not None and len(self.batches) + 1 == self.crash_on_batch:
            raise BackendCrashed("killed mid-shard")
        self.batches.append([request.text for request in requests])
        return [
            Completion(text=f"reworded {request.text}", prompt_tokens=3, completion_tokens=2)
            for request in requests
        ]


CONFIG = ParaphraserConfig(chunk_size=4)
TEXTS = [f"caption number {index}" for index in range(10)]


def test_crash_mid_shard_then_rerun_calls_only_missing_chunks(tmp_path: Path) -> None:
    rows = stage1_rows(TEXTS)
    crashing = RecordingBackend(CONFIG, crash_on_batch=3)
    with pytest.raises(BackendCrashed):
        run_paraphrase_stage(rows, stage=1, config=CONFIG, cache_dir=tmp_path, backend=crashing)
    assert crashing.calls == 10  # chunks of 4 + 4 committed, the last chunk (2) died
    committed = {text for batch in crashing.batches for text in batch}

    resumed = RecordingBackend(CONFIG)
    result = run_paraphrase_stage(rows, stage=1, config=CONFIG, cache_dir=tmp_path, backend=resumed)
    resumed_texts = [text for batch in resumed.batches for text in batch]
    assert sorted(resumed_texts) == sorted(set(TEXTS) - committed)
    assert result.stats.calls == 2 and result.stats.cache_hits == 8

    clean = RecordingBackend(CONFIG)
    reference = run_paraphrase_stage(
        rows, stage=1, config=CONFIG, cache_dir=tmp_path / "fresh", backend=clean
    )
    assert result.table.equals(reference.table)
    assert result.table.column(schema.PARAPHRASE_1).to_pylist() == [f"reworded {t}" for t in TEXTS]


def test_rerun_from_cache_makes_zero_calls(tmp_path: Path) -> None:
    rows = stage1_rows(TEXTS)
    first = run_paraphrase_stage(
        rows, stage=1, config=CONFIG, cache_dir=tmp_path, backend=RecordingBackend(CONFIG)
    )
    backend = RecordingBackend(CONFIG)
    second = run_paraphrase_stage(rows, stage=1, config=CONFIG, cache_dir=tmp_path, backend=backend)
    assert backend.calls == 0 and second.stats.calls == 0
    assert second.stats.cache_hits == len(TEXTS) and second.stats.tokens == 0
    assert first.stats.tokens == 5 * len(TEXTS)
    assert second.table.equals(first.table)


def test_cache_key_separates_templates_and_sampling(tmp_path: Path) -> None:
    rows = stage1_rows(TEXTS[:2])
    run_paraphrase_stage(
        rows, stage=1, config=CONFIG, cache_dir=tmp_path, backend=RecordingBackend(CONFIG)
    )
    for changed in (
        CONFIG.model_copy(update={"temperature": 0.5}),
        CONFIG.model_copy(update={"stage1_template": 'Reword "{caption}".'}),
    ):
        backend = RecordingBackend(changed)
        run_paraphrase_stage(rows, stage=1, config=changed, cache_dir=tmp_path, backend=backend)
        assert backend.calls == 2


def test_duplicates_are_called_once_and_order_is_kept(tmp_path: Path) -> None:
    texts = ["b dog", "a cat", "b dog", "a cat", "c cow"]
    backend = RecordingBackend(CONFIG)
    result = run_paraphrase_stage(
        stage1_rows(texts), stage=1, config=CONFIG, cache_dir=tmp_path, backend=backend
    )
    assert backend.calls == 3
    assert result.table.column(schema.PARAPHRASE_1).to_pylist() == [f"reworded {t}" for t in texts]


def test_stage2_skips_rows_not_ok_in_stage1(tmp_path: Path) -> None:
    stage1 = pa.table(
        {
            schema.CAPTION_ID: ["a", "b", "c"],
            schema.SHARD: ["s"] * 3,
            schema.TEXT: ["dog on grass", "cat", "[refuse]"],
            schema.PARAPHRASE_1: ["a dog on a lawn", None, None],
            schema.STATUS_1: ["ok", "skipped", "refused"],
        },
        schema=schema.STAGE1_SCHEMA,
    )
    backend = RecordingBackend(CONFIG)
    result = run_paraphrase_stage(
        stage1, stage=2, config=CONFIG, cache_dir=tmp_path, backend=backend
    )
    assert result.table.schema == schema.STAGE2_SCHEMA
    assert result.table.column(schema.STATUS_2).to_pylist() == ["ok", "skipped", "skipped"]
    assert result.table.column(schema.PARAPHRASE_2).to_pylist() == [
        "reworded a dog on a lawn",
        None,
        None,
    ]
    assert backend.batches == [["a dog on a lawn"]]


def test_bad_input_names_row_and_column(tmp_path: Path) -> None:
    with pytest.raises(ParaphraseInputError, match="input_issue"):
        run_paraphrase_stage(
            stage1_rows(TEXTS).drop_columns([schema.INPUT_ISSUE]),
            stage=1,
            config=CONFIG,
            cache_dir=tmp_path,
            backend=RecordingBackend(CONFIG),
        )
    with pytest.raises(ParaphraseInputError, match=r"row 1 \(caption_id='c0001'\).*'text'"):
        run_paraphrase_stage(
            stage1_rows(["fine", "   "]),
            stage=1,
            config=CONFIG,
            cache_dir=tmp_path,
            backend=RecordingBackend(CONFIG),
        )


def test_blank_means_what_str_strip_says(tmp_path: Path) -> None:
    """The usable-but-empty check runs in Arrow over a copy of Python's whitespace."""
    every = "".join(char for char in map(chr, range(sys.maxunicode + 1)) if char.isspace())
    assert every == PYTHON_WHITESPACE
    for blank in ["\u3000\x1c\t", "\x85\xa0"]:
        with pytest.raises(ParaphraseInputError, match=r"row 2 \(caption_id='c0002'\)"):
            run_paraphrase_stage(
                stage1_rows(["fine", "\u200b zero-width is not space", blank]),
                stage=1,
                config=CONFIG,
                cache_dir=tmp_path,
                backend=RecordingBackend(CONFIG),
            )


def test_errors_are_not_cached(tmp_path: Path) -> None:
    class FlakyBackend(RecordingBackend):
        def _generate(self, requests: Sequence[ParaphraseRequest]) -> list[Completion]:
            return [Completion(error="HTTP 503 after retries") for _ in requests]

    rows = stage1_rows(TEXTS[:3])
    result = run_paraphrase_stage(
        rows, stage=1, config=CONFIG, cache_dir=tmp_path, backend=FlakyBackend(CONFIG)
    )
    assert result.table.column(schema.STATUS_1).to_pylist() == ["error"] * 3
    assert result.stats.failures == 3
    identity = RecordingBackend(CONFIG).cache_identity(1)
    assert ParaphraseCache(tmp_path, identity).chunk_files() == []
    retry = RecordingBackend(CONFIG)
    run_paraphrase_stage(rows, stage=1, config=CONFIG, cache_dir=tmp_path, backend=retry)
    assert retry.calls == 3


def test_answers_cleaned_by_older_hygiene_are_recleaned_without_calls(tmp_path: Path) -> None:
    backend = RecordingBackend(CONFIG)
    cache = ParaphraseCache(tmp_path, backend.cache_identity(1))
    raw = 'Sure! Here is a paraphrase: "A hound on the sand."'
    stale = CachedAnswer(
        paraphrase=raw,
        status="ok",
        hygiene_version="hygiene-0",
        prompt_tokens=4,
        completion_tokens=6,
        input_text="a dog on a beach",
        answer=raw,
    )
    cache.commit({cache.key("a dog on a beach"): stale})
    result = run_paraphrase_stage(
        stage1_rows(["a dog on a beach"]),
        stage=1,
        config=CONFIG,
        cache_dir=tmp_path,
        backend=backend,
    )
    assert backend.calls == 0
    assert result.table.column(schema.PARAPHRASE_1).to_pylist() == ["A hound on the sand."]
