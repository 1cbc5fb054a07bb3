"""Run one paraphrasing step over a shard: cache lookup, streamed backend calls, hygiene.

A shard goes through ``StageRun.process_shard`` batch by batch with ONE cache lookup for
the whole shard: a cache lookup costs about one scan of the cache whatever the number of
keys (2.6-3.7 s against 10M answers), so a lookup per 65,536-row batch cost 41-59 s for a
1M-caption shard; the whole shard's one lookup takes 7.6-8.7 s against 10M answers
(``benchmarks/bench_paraphrase_cache.py``; ``paraphrase/cache_lookup.py`` has the figures
and runs it a key range at a time, so its memory is flat; a shard over
``LOOKUP_SLICE_ROWS`` is looked up a 1M-row slice at a time). The
shard is streamed twice (its texts out to a file for the lookup, then its rows against
the hits sorted by row position), so memory stays set by the batch. ``process`` looks
one batch up on its own (``run_paraphrase_stage``: a whole table as one batch).

Rows of a batch needing an answer are deduplicated by cache key and handed to the backend
at once (``generate_stream``); its answers come back in batches of at most
``config.chunk_size``, at most ``config.commit_interval_s`` after the oldest one, and
each batch is committed to the cache as it arrives while the backend keeps its requests
in flight (no drain per chunk). A crash loses at most one batch and a rerun calls the
backend only for what is missing. Output rows keep the input order and count: a row that
cannot be paraphrased gets a status, never disappears.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from paraclip_pipeline import schema
from paraclip_pipeline.paraphrase import hygiene
from paraclip_pipeline.paraphrase.backends import build_backend
from paraclip_pipeline.paraphrase.backends.base import ParaphraseBackend, ParaphraseRequest
from paraclip_pipeline.paraphrase.cache import HIT_COLUMNS, CachedAnswer, CacheHit, ParaphraseCache
from paraclip_pipeline.paraphrase.config import ParaphraserConfig
from paraclip_pipeline.paraphrase.errors import ParaphraseInputError
from paraclip_pipeline.paraphrase.prompts import Stage, render_prompt
from paraclip_pipeline.paraphrase.shard_lookup import PositionsWriter, ShardLookup
from paraclip_pipeline.scratch import scratch_directory


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


# What ``str.strip()`` removes (every character whose ``isspace()`` is true), for Arrow's
# trim: a text of only these is empty, as a per-row ``text.strip()`` said (that loop took
# 1 s a 1M-row shard, the stage path's inputs being read twice).
PYTHON_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def _stage_inputs(rows: pa.Table, stage: Stage) -> list[str | None]:
    """The text each row sends to the backend, or None when the row is skipped."""
    if stage == 1:
        _require_columns(rows, schema.STAGE1_INPUT_COLUMNS, stage)
        source_column = schema.TEXT
        usable = pc.is_null(rows.column(schema.INPUT_ISSUE))
    else:
        _require_columns(rows, tuple(schema.STAGE1_SCHEMA.names), stage)
        source_column = schema.PARAPHRASE_1
        usable = pc.fill_null(pc.equal(rows.column(schema.STATUS_1), hygiene.OK), False)
    texts = rows.column(source_column)
    blank = pc.fill_null(pc.equal(pc.utf8_trim(texts, PYTHON_WHITESPACE), ""), True)
    empty_but_usable = pc.and_(usable, blank)
    if pc.any(empty_but_usable).as_py():
        row = pc.index(empty_but_usable, True).as_py()
        caption_id = rows.column(schema.CAPTION_ID)[row].as_py()
        raise ParaphraseInputError(
            f"stage {stage} input row {row} (caption_id={caption_id!r}): "
            f"column {source_column!r} is empty but the row is marked usable"
        )
    return pc.if_else(usable, texts, pa.scalar(None, texts.type)).to_pylist()


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


class StageRun:
    """One paraphrasing step over a shard fed batch by batch (``process_shard``, or
    ``process`` per batch), so a shard of any size streams through in memory set by the
    batch: one backend and one cache for the whole shard, the statistics summed over the
    batches.

    Within a batch, rows needing an answer are deduplicated by cache key; a text repeated
    in a later batch is answered from this run's answer (``process_shard`` keeps it until
    the text's last row, as the shard lookup says) or from the cache chunk the earlier
    batch committed (``process``), never asked again (one ``generate_stream`` window per
    batch, so the window drains once per batch, not per cache chunk). Use as a context
    manager: it closes a backend it built.
    """

    def __init__(
        self,
        *,
        stage: Stage,
        config: ParaphraserConfig,
        cache_dir: Path,
        backend: ParaphraseBackend | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if stage not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {stage!r}")
        self.stage: Stage = stage
        self._config = config
        self._log = log
        self._owns_backend = backend is None
        self._backend = backend if backend is not None else build_backend(config)
        self._calls_before = self._backend.calls
        self._cache = ParaphraseCache(cache_dir, self._backend.cache_identity(stage))
        self._started = time.perf_counter()
        self._rows = self._cache_hits = self._tokens = self._failures = self._chunks = 0
        self._errors: set[str] = set()

    def __enter__(self) -> StageRun:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_backend:
            self._backend.close()

    def _call_backend(self, text_by_key: dict[str, str], answers: dict[str, CacheHit]) -> list[str]:
        """Ask the backend for every key not in ``answers``, committing chunk by chunk."""
        stage, config, cache = self.stage, self._config, self._cache
        pending = [key for key in text_by_key if key not in answers]
        template = config.template(stage)
        requests = [
            ParaphraseRequest(
                stage, text_by_key[key], render_prompt(template, stage, text_by_key[key])
            )
            for key in pending
        ]
        batches = self._backend.generate_stream(
            requests, batch_size=config.chunk_size, max_wait_s=config.commit_interval_s
        )
        for batch in batches:
            fresh: dict[str, CachedAnswer] = {}
            for index, completion in batch:
                key, request = pending[index], requests[index]
                if completion.text is None:
                    self._errors.add(completion.error or "unknown error")
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
            self._tokens += sum(
                answer.prompt_tokens + answer.completion_tokens for answer in fresh.values()
            )
            self._chunks += 1
            if self._log is not None:
                self._log(
                    f"stage {stage}: chunk {self._chunks} committed ({len(fresh)} answers, "
                    f"{len(batch) - len(fresh)} errors; {len(pending)} uncached in this batch)"
                )
        return pending

    def _inputs(self, rows: pa.Table) -> list[str | None]:
        """Each row's backend input (None for a row that is skipped)."""
        backend, inputs = self._backend, _stage_inputs(rows, self.stage)
        if type(backend).answers is ParaphraseBackend.answers:
            return inputs  # answers everything: no request object per row (1M rows: ~1 s)
        # A row the backend cannot answer (e.g. a caption with no co-captions) is skipped.
        return [
            text
            if text is None or backend.answers(ParaphraseRequest(self.stage, text, ""))
            else None
            for text in inputs
        ]

    def process(self, rows: pa.Table) -> pa.Table:
        """The step's output rows for ``rows`` (same order and count), looked up on their own
        (one scan of the cache; ``process_shard`` makes one for a whole shard)."""
        cache = self._cache
        inputs = self._inputs(rows)
        keys = [None if text is None else cache.key(text) for text in inputs]
        answers = dict(cache.lookup(key for key in keys if key is not None))
        stale_raw = cache.raw_answers(
            key for key, hit in answers.items() if hit.hygiene_version != hygiene.HYGIENE_VERSION
        )
        return self._answer(rows, inputs, keys, answers, stale_raw)

    def process_shard(
        self, batches: Callable[[], Iterable[pa.RecordBatch]], work_dir: Path | None = None
    ) -> Iterator[pa.Table]:
        """The step's output for each batch of ``batches()`` (called twice: the shard is
        streamed once for its texts, once to answer), with one cache lookup for the shard
        (one per ``LOOKUP_SLICE_ROWS`` rows of a bigger one).

        Same rows, answers and backend calls as ``process`` on each batch, except that an
        answer another process commits during the run is not seen (a rerun finds it). An
        answer this run makes for a text a later batch repeats is kept until that row.
        The shard's texts and hits go to a scratch directory under ``work_dir``
        (``scratch.scratch_directory``: a killed run's is swept by the next).
        """
        parent = Path(tempfile.gettempdir()) if work_dir is None else work_dir
        with scratch_directory(parent, "paraclip-shard-lookup-") as work:
            positions_path = work / "positions.parquet"
            positions = PositionsWriter(positions_path)
            try:
                for batch in batches():
                    positions.write(self._inputs(pa.Table.from_batches([batch])))
            finally:
                positions.close()
            lookup = ShardLookup(self._cache, positions_path, work, hygiene.HYGIENE_VERSION)
            try:
                yield from self._answer_shard(batches(), lookup)
            finally:
                lookup.close()

    def _answer_shard(
        self, batches: Iterable[pa.RecordBatch], lookup: ShardLookup
    ) -> Iterator[pa.Table]:
        carried: dict[str, tuple[CacheHit, int]] = {}  # answered here, repeated until row
        start = 0
        for batch in batches:
            rows = pa.Table.from_batches([batch])
            end = start + rows.num_rows
            inputs = self._inputs(rows)
            found = lookup.take(start, end)
            if len(found.keys) != len(inputs) - inputs.count(None):
                raise RuntimeError(f"stage {self.stage}: the shard changed between its passes")
            keys: list[str | None] = list(found.keys)
            if len(keys) < len(inputs):  # skipped rows have no key
                found_keys = iter(found.keys)
                keys = [None if text is None else next(found_keys) for text in inputs]
            carried = {key: kept for key, kept in carried.items() if kept[1] >= start}
            answers = found.answers | {
                key: carried[key][0] for key in set(keys) & carried.keys() if key is not None
            }
            yield self._answer(rows, inputs, keys, answers, found.stale_raw)
            for key, last_row in found.repeated_until.items():
                if (answer := answers.get(key)) is not None:  # not kept when it failed
                    hit = CacheHit(*(getattr(answer, name) for name in HIT_COLUMNS))
                    carried[key] = (hit, last_row)
            start = end

    def _answer(
        self,
        rows: pa.Table,
        inputs: list[str | None],
        keys: list[str | None],
        answers: dict[str, CacheHit],
        stale_raw: Mapping[str, str],
    ) -> pa.Table:
        """The output rows, given the cached ``answers``: the backend answers the rest (added
        to ``answers``)."""
        text_by_key = {key: text for key, text in zip(keys, inputs, strict=True) if key is not None}
        pending_keys = set(self._call_backend(text_by_key, answers))

        paraphrases: list[str | None] = []
        statuses: list[str] = []
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
            self._cache_hits += key not in pending_keys
            if answer.hygiene_version == hygiene.HYGIENE_VERSION:
                paraphrases.append(answer.paraphrase)
                statuses.append(answer.status)
            else:  # cached under older hygiene rules: re-clean the raw answer, no new call
                cleaned = hygiene.clean_answer(stale_raw[key], text)
                paraphrases.append(cleaned.text)
                statuses.append(cleaned.status)
        self._rows += rows.num_rows
        self._failures += statuses.count(hygiene.ERROR)
        return _output_table(rows, self.stage, paraphrases, statuses)

    def stats(self) -> StageStats:
        """Totals over every batch so far; logs the failures once."""
        wall_s = time.perf_counter() - self._started
        if self._log is not None and self._errors:
            sample = "; ".join(sorted(self._errors)[:3])
            self._log(
                f"stage {self.stage}: {self._failures} rows failed and will be retried next "
                f"run ({sample})"
            )
        return StageStats(
            rows=self._rows,
            cache_hits=self._cache_hits,
            calls=self._backend.calls - self._calls_before,
            failures=self._failures,
            tokens=self._tokens,
            wall_s=wall_s,
            captions_per_s=self._rows / wall_s if wall_s > 0 else 0.0,
        )


def run_paraphrase_stage(
    rows: pa.Table,
    *,
    stage: Stage,
    config: ParaphraserConfig,
    cache_dir: Path,
    backend: ParaphraseBackend | None = None,
    log: Callable[[str], None] | None = None,
) -> StageResult:
    """Paraphrase step ``stage`` for every row of ``rows`` at once (one ``StageRun`` batch)."""
    with StageRun(stage=stage, config=config, cache_dir=cache_dir, backend=backend, log=log) as run:
        table = run.process(rows)
        return StageResult(table, run.stats())
