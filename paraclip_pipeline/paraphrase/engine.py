"""Run one paraphrasing step over a shard: cache lookup, streamed backend calls, hygiene.

Rows needing an answer are deduplicated by cache key and handed to the backend all at
once (``generate_stream``); its answers come back in batches of at most
``config.chunk_size``, at most ``config.commit_interval_s`` after the oldest one, and
each batch is committed to the cache as it arrives while the backend keeps its requests
in flight (no drain per chunk). A crash loses at most one batch and a rerun calls the
backend only for what is missing. Output rows keep the input order and count: a row that
cannot be paraphrased gets a status, never disappears.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa

from paraclip_pipeline import schema
from paraclip_pipeline.paraphrase import hygiene
from paraclip_pipeline.paraphrase.backends import build_backend
from paraclip_pipeline.paraphrase.backends.base import ParaphraseBackend, ParaphraseRequest
from paraclip_pipeline.paraphrase.cache import CachedAnswer, CacheHit, ParaphraseCache
from paraclip_pipeline.paraphrase.config import ParaphraserConfig
from paraclip_pipeline.paraphrase.errors import ParaphraseInputError
from paraclip_pipeline.paraphrase.prompts import Stage, render_prompt


@dataclass(frozen=True)
class StageStats:
    rows: int
    cache_hits: int  # rows answered from the cache, no backend call
    calls: int  # backend requests made by this run
    failures: int  # rows left with status "error" (retried next run)
    tokens: int  # prompt + completion tokens spent by this run, where the backend reports them
    wall_s: float
    captions_per_s: float

    def as_metadata(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class StageResult:
    table: pa.Table
    stats: StageStats


def _require_columns(rows: pa.Table, columns: tuple[str, ...], stage: Stage) -> None:
    missing = [name for name in columns if name not in rows.column_names]
    if missing:
        raise ParaphraseInputError(
            f"stage {stage} input lacks column(s) {missing}; it has {rows.column_names}"
        )


def _stage_inputs(rows: pa.Table, stage: Stage) -> list[str | None]:
    """The text each row sends to the backend, or None when the row is skipped."""
    if stage == 1:
        _require_columns(rows, schema.STAGE1_INPUT_COLUMNS, stage)
        texts = rows.column(schema.TEXT).to_pylist()
        issues = rows.column(schema.INPUT_ISSUE).to_pylist()
        source_column = schema.TEXT
        usable = [issue is None for issue in issues]
    else:
        _require_columns(rows, tuple(schema.STAGE1_SCHEMA.names), stage)
        texts = rows.column(schema.PARAPHRASE_1).to_pylist()
        usable = [status == hygiene.OK for status in rows.column(schema.STATUS_1).to_pylist()]
        source_column = schema.PARAPHRASE_1
    ids = rows.column(schema.CAPTION_ID).to_pylist()
    inputs: list[str | None] = []
    for row, (caption_id, text, use) in enumerate(zip(ids, texts, usable, strict=True)):
        if use and (text is None or not text.strip()):
            raise ParaphraseInputError(
                f"stage {stage} input row {row} (caption_id={caption_id!r}): "
                f"column {source_column!r} is empty but the row is marked usable"
            )
        inputs.append(text if use else None)
    return inputs


def _output_table(
    rows: pa.Table, stage: Stage, paraphrases: list[str | None], statuses: list[str]
) -> pa.Table:
    if stage == 1:
        columns = {
            name: rows.column(name) for name in (schema.CAPTION_ID, schema.SHARD, schema.TEXT)
        }
        columns |= {schema.PARAPHRASE_1: paraphrases, schema.STATUS_1: statuses}
        return pa.table(columns, schema=schema.STAGE1_SCHEMA)
    columns = {name: rows.column(name) for name in schema.STAGE1_SCHEMA.names}
    columns |= {schema.PARAPHRASE_2: paraphrases, schema.STATUS_2: statuses}
    return pa.table(columns, schema=schema.STAGE2_SCHEMA)


def run_paraphrase_stage(
    rows: pa.Table,
    *,
    stage: Stage,
    config: ParaphraserConfig,
    cache_dir: Path,
    backend: ParaphraseBackend | None = None,
    log: Callable[[str], None] | None = None,
) -> StageResult:
    """Paraphrase step ``stage`` for every row of ``rows``; see the module docstring."""
    if stage not in (1, 2):
        raise ValueError(f"stage must be 1 or 2, got {stage!r}")
    started = time.perf_counter()
    inputs = _stage_inputs(rows, stage)
    owns_backend = backend is None
    active = backend if backend is not None else build_backend(config)
    calls_before = active.calls
    inputs = [
        text if text is None or active.answers(ParaphraseRequest(stage, text, "")) else None
        for text in inputs
    ]
    try:
        cache = ParaphraseCache(cache_dir, active.cache_identity(stage))
        keys = [None if text is None else cache.key(text) for text in inputs]
        text_by_key = {key: text for key, text in zip(keys, inputs, strict=True) if key is not None}
        answers: dict[str, CacheHit] = dict(cache.lookup(text_by_key))
        pending = [key for key in text_by_key if key not in answers]
        stale_raw = cache.raw_answers(
            key for key, hit in answers.items() if hit.hygiene_version != hygiene.HYGIENE_VERSION
        )
        errors: dict[str, str] = {}
        tokens = 0
        template = config.template(stage)
        requests = [
            ParaphraseRequest(
                stage, text_by_key[key], render_prompt(template, stage, text_by_key[key])
            )
            for key in pending
        ]
        batches = active.generate_stream(
            requests, batch_size=config.chunk_size, max_wait_s=config.commit_interval_s
        )
        for number, batch in enumerate(batches, start=1):
            fresh: dict[str, CachedAnswer] = {}
            for index, completion in batch:
                key, request = pending[index], requests[index]
                if completion.text is None:
                    errors[key] = completion.error or "unknown error"
                    continue
                cleaned = hygiene.clean_answer(completion.text, request.text)
                fresh[key] = CachedAnswer(
                    input_text=request.text,
                    answer=completion.text,
                    paraphrase=cleaned.text,
                    status=cleaned.status,
                    hygiene_version=hygiene.HYGIENE_VERSION,
                    prompt_tokens=completion.prompt_tokens,
                    completion_tokens=completion.completion_tokens,
                )
            cache.commit(fresh)
            answers |= fresh
            tokens += sum(
                answer.prompt_tokens + answer.completion_tokens for answer in fresh.values()
            )
            if log is not None:
                log(
                    f"stage {stage}: chunk {number} committed ({len(fresh)} answers, "
                    f"{len(batch) - len(fresh)} errors; {len(pending)} uncached in total)"
                )
    finally:
        if owns_backend:
            active.close()

    paraphrases: list[str | None] = []
    statuses: list[str] = []
    cache_hits = 0
    pending_keys = set(pending)
    for key, text in zip(keys, inputs, strict=True):
        if key is None or text is None:
            paraphrases.append(None)
            statuses.append(hygiene.SKIPPED)
            continue
        answer = answers.get(key)
        if answer is None:
            paraphrases.append(None)
            statuses.append(hygiene.ERROR)
            continue
        cache_hits += key not in pending_keys
        if answer.hygiene_version == hygiene.HYGIENE_VERSION:
            paraphrases.append(answer.paraphrase)
            statuses.append(answer.status)
        else:  # cached under older hygiene rules: re-clean the raw answer, no new call
            cleaned = hygiene.clean_answer(stale_raw[key], text)
            paraphrases.append(cleaned.text)
            statuses.append(cleaned.status)

    wall_s = time.perf_counter() - started
    failures = statuses.count(hygiene.ERROR)
    if log is not None and errors:
        sample = "; ".join(sorted(set(errors.values()))[:3])
        log(f"stage {stage}: {failures} rows failed and will be retried next run ({sample})")
    stats = StageStats(
        rows=rows.num_rows,
        cache_hits=cache_hits,
        calls=active.calls - calls_before,
        failures=failures,
        tokens=tokens,
        wall_s=wall_s,
        captions_per_s=rows.num_rows / wall_s if wall_s > 0 else 0.0,
    )
    return StageResult(_output_table(rows, stage, paraphrases, statuses), stats)
