"""``apply_filter_rules`` for a shard of any size, in memory set by the batch size.

Same rows, same order, same verdicts and details as the in-memory ``apply_filter_rules``
(the tests compare both), in three steps:

1. Each batch is validated and judged by every rule but dedup: the rules before dedup,
   then the rules after it on the rows still alive (a row's first rejecting rule wins,
   so judging rows that dedup will reject later changes no verdict). The judged rows go
   to a spill file in the work directory, and the dedup keys of the rows alive at dedup
   (caption id + normalised texts) to another.
2. The rules that need the whole shard run one caption-id range at a time
   (``id_ranges``: the judged rows are split into one file per range, dedup's keys by a
   hash of the key columns), in DuckDB, which spills to disk past its memory limit:
   caption ids must be unique, and dedup rejects every row of a key group but its
   smallest caption id ("duplicate of <that id>"), exactly what dedup does in caption_id
   order in memory. Only the duplicates come back, to the file of their id range.
3. DuckDB sorts each range's judged rows by caption_id, ranges in order, and streams them
   back; the dedup verdicts and the ``missing_text`` net are applied and each batch goes
   to the kept or the rejected file (``parquet_stream``: atomic, hashed on the way). The
   pass rate, drop counts and examples are tallied as they pass.

The language and meaning rules judge each row alone, so a batch is as good as the
shard for them (the meaning rule's encoder batches its inputs anyway).
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from paraclip_pipeline import schema
from paraclip_pipeline.filtering import apply, id_ranges
from paraclip_pipeline.filtering import features as ft
from paraclip_pipeline.filtering.rules import TEXT_COLUMNS, DedupRule, FilterRulesError, RuleSet
from paraclip_pipeline.scratch import scratch_directory
from paraclip_pipeline.storage import (
    STREAM_BATCH_ROWS,
    parquet_stream,
    rebatched,
    row_group_batches,
)

if TYPE_CHECKING:
    from paraclip_pipeline.modeling.sentence_encoder import SentenceEncoder

# Rows judged, and fetched back sorted, at a time, whatever the caller's batch: the rules'
# working set (word lists, features) is a few kB a row, so 65k-row batches made 150-250 MB
# spikes, and a shard of many batches hit a higher one than a shard of two.
WORK_ROWS = 16_384
_ALIVE_AT_DEDUP = "__alive_at_dedup"
_BLANK = "__blank"


@dataclass(frozen=True)
class StreamedFilterOutcome:
    """What ``apply_filter_rules``'s outcome says, for tables written to disk."""

    rows_in: int
    kept_rows: int
    kept_fingerprint: str  # table_fingerprint of the kept file
    rejected_fingerprint: str
    drop_counts: dict[str, int]
    examples: dict[str, list[str]]
    pass_rate: float


def _split_at_dedup(rules: RuleSet) -> tuple[list, DedupRule | None, list]:
    enabled = rules.enabled_rules
    for index, rule in enumerate(enabled):
        if isinstance(rule, DedupRule):
            return enabled[:index], rule, enabled[index + 1 :]
    return enabled, None, []


def _dedup_keys(frame: pl.DataFrame, rule: DedupRule) -> pl.DataFrame:
    """caption_id and one key column per compared text, as DedupRule.judge builds them."""
    return frame.select(
        pl.col(schema.CAPTION_ID),
        *[
            (ft.words(c).expr.list.join(" ") if rule.normalised else pl.col(c)).alias(f"key_{i}")
            for i, c in enumerate(rule.columns)
        ],
    )


def _judge_batches(
    batches: Iterable[pa.Table],
    rules: RuleSet,
    encoder: SentenceEncoder | None,
    judged: id_ranges.Spill,
    keys: id_ranges.Spill,
) -> pa.Schema | None:
    """Step 1 of the module docstring; returns the validated input schema (None: no rows)."""
    before, dedup, after = _split_at_dedup(rules)
    input_schema: pa.Schema | None = None
    slices = (
        whole.slice(start, WORK_ROWS)
        for whole in batches
        for start in range(0, whole.num_rows, WORK_ROWS)
    )
    for raw in slices:
        batch = apply._validated(raw)
        if input_schema is None:
            input_schema = batch.schema
        elif not batch.schema.equals(input_schema):
            raise apply.FilterInputError(
                f"batch schema {batch.schema} differs from the first batch's {input_schema}"
            )
        frame = apply._working_frame(batch)
        rejected_by, details = apply.rule_verdicts(frame, before, encoder)
        alive = rejected_by.is_null()
        if dedup is not None:
            keys.write(_dedup_keys(frame.filter(alive), dedup).to_arrow())
        rejected_by, details = apply.rule_verdicts(frame, after, encoder, (rejected_by, details))
        marks = pa.table(
            {
                schema.REJECTED_BY: rejected_by.to_arrow().cast(pa.string()),
                apply.REJECT_DETAIL: details.to_arrow().cast(pa.string()),
                _ALIVE_AT_DEDUP: alive.to_arrow(),
                _BLANK: apply.blank_text(frame).to_arrow(),
            }
        )
        judged.write(
            pa.Table.from_arrays(
                [*batch.columns, *marks.columns], [*batch.schema.names, *marks.schema.names]
            )
        )
    return input_schema


def _final_verdicts(batch: pa.RecordBatch, dedup: DedupRule | None) -> pl.DataFrame:
    frame = pl.from_arrow(pa.Table.from_batches([batch]))
    assert isinstance(frame, pl.DataFrame)
    duplicate = pl.col(_ALIVE_AT_DEDUP) & pl.col(id_ranges.DUPLICATE_DETAIL).is_not_null()
    missing = pl.col(schema.REJECTED_BY).is_null() & pl.col(_BLANK)
    dedup_name = dedup.name if dedup is not None else ""
    return frame.with_columns(
        pl.when(duplicate)
        .then(pl.lit(dedup_name))
        .when(missing)
        .then(pl.lit(apply.MISSING_TEXT_RULE))
        .otherwise(pl.col(schema.REJECTED_BY))
        .alias(schema.REJECTED_BY),
        pl.when(duplicate)
        .then(pl.col(id_ranges.DUPLICATE_DETAIL))
        .when(missing)
        .then(pl.lit(apply.MISSING_TEXT_DETAIL))
        .otherwise(pl.col(apply.REJECT_DETAIL))
        .alias(apply.REJECT_DETAIL),
    )


def _tally(dropped: pl.DataFrame, counts: Counter[str], examples: dict[str, list[str]]) -> None:
    """Add a batch's rejected rows to the drop counts, and its first rows to the examples."""
    counts.update(dict(dropped[schema.REJECTED_BY].value_counts().iter_rows()))
    wanting = [name for name in counts if len(examples.get(name, [])) < apply.EXAMPLES_PER_RULE]
    sample = (
        dropped.filter(pl.col(schema.REJECTED_BY).is_in(wanting))
        .group_by(schema.REJECTED_BY, maintain_order=True)
        .head(apply.EXAMPLES_PER_RULE)
    )
    for row in sample.iter_rows(named=True):
        found = examples.setdefault(row[schema.REJECTED_BY], [])
        if len(found) < apply.EXAMPLES_PER_RULE:
            found.append(apply._example(row))


def stream_filter_rules(
    batches: Iterable[pa.Table],
    rules: RuleSet,
    encoder: SentenceEncoder | None,
    *,
    kept_target: Path,
    rejected_target: Path,
    batch_rows: int,
    work_dir: Path | None = None,
) -> StreamedFilterOutcome:
    """``apply_filter_rules`` over ``batches`` (any order, caption ids unique across all),
    writing ``kept_target`` and ``rejected_target`` batch by batch; see the module docstring.
    """
    if rules.needs_encoder and encoder is None:
        raise FilterRulesError(
            f"{rules.source}: the meaning_kept rule is enabled, so a SentenceEncoder is needed"
        )
    _, dedup, _ = _split_at_dedup(rules)
    parent = Path(tempfile.gettempdir()) if work_dir is None else Path(work_dir)
    with scratch_directory(parent, "paraclip-filter-") as work:
        judged = id_ranges.Spill(work / "judged.parquet")
        keys = id_ranges.Spill(work / "keys.parquet")
        try:
            input_schema = _judge_batches(batches, rules, encoder, judged, keys)
        finally:
            has_judged, has_keys = judged.close(), keys.close()
        if input_schema is None or not has_judged:
            raise apply.FilterInputError("no rows to filter")
        bounds = id_ranges.id_bounds(judged.rows)
        judged_ranges = id_ranges.split_by_id(judged.path, bounds)
        rejected_schema = input_schema.append(pa.field(schema.REJECTED_BY, pa.string())).append(
            pa.field(apply.REJECT_DETAIL, pa.string())
        )
        counts: Counter[str] = Counter()
        examples: dict[str, list[str]] = {}
        rows_in = 0
        with (
            id_ranges.connect(work) as connection,
            parquet_stream(kept_target, schema.FILTERED_PAIRS_SCHEMA) as kept,
            parquet_stream(rejected_target, rejected_schema) as rejected,
        ):
            fetch_rows = min(batch_rows, WORK_ROWS)
            duplicates: list[Path | None] = [None] * len(judged_ranges)
            if has_keys and dedup is not None:
                duplicates = id_ranges.write_duplicates(
                    connection, keys.path, len(dedup.columns), bounds, fetch_rows
                )
            ordered = id_ranges.sorted_ranges(connection, judged_ranges, duplicates, fetch_rows)
            for batch in rebatched(ordered, fetch_rows):
                frame = _final_verdicts(batch, dedup)
                rows_in += frame.height
                is_kept = frame[schema.REJECTED_BY].is_null()
                kept_rows = frame.filter(is_kept).select(input_schema.names).to_arrow()
                kept_rows = kept_rows.cast(input_schema)
                kept.write(apply._kept_table(kept_rows, apply.split_of(kept_rows, rules)))
                dropped = frame.filter(~is_kept).select(rejected_schema.names)
                rejected.write(dropped.to_arrow().cast(rejected_schema))
                _tally(dropped, counts, examples)
    return StreamedFilterOutcome(
        rows_in=rows_in,
        kept_rows=kept.rows,
        kept_fingerprint=kept.fingerprint,
        rejected_fingerprint=rejected.fingerprint,
        drop_counts={
            name: counts.get(name, 0) for name in [*rules.rule_names, apply.MISSING_TEXT_RULE]
        },
        examples=examples,
        pass_rate=kept.rows / rows_in if rows_in else 0.0,
    )


def paired_batches(
    pairs: Iterable[pa.RecordBatch], extra: Iterable[pa.RecordBatch]
) -> Iterator[pa.Table]:
    """Rows of ``pairs`` (stage 2) with the columns of ``extra`` (raw captions: caption_id,
    nsfw, input_issue) beside them, row by row: both keep the shard's row order, so no join
    is needed, and a row whose caption ids differ is an error naming it."""
    extra_iter = iter(extra)
    pending: pa.Table | None = None
    row = 0
    for batch in pairs:
        while pending is None or len(pending) < batch.num_rows:
            more = next(extra_iter, None)
            if more is None:
                raise apply.FilterInputError(
                    f"stage 2 has more rows than raw captions (raw ends before row "
                    f"{row + (0 if pending is None else len(pending))})"
                )
            table = pa.Table.from_batches([more])
            pending = table if pending is None else pa.concat_tables([pending, table])
        beside, pending = pending.slice(0, batch.num_rows), pending.slice(batch.num_rows)
        ids = beside[schema.CAPTION_ID]
        left = pa.Table.from_batches([batch])
        mismatch = pc.not_equal(left[schema.CAPTION_ID], ids)
        if pc.any(mismatch).as_py():
            at = pc.index(mismatch, True).as_py()
            raise apply.FilterInputError(
                f"row {row + at}: stage 2 has caption_id {left[schema.CAPTION_ID][at]} but raw "
                f"captions {ids[at]}; rerun the paraphrase steps for this shard"
            )
        for name in beside.column_names:
            if name != schema.CAPTION_ID:
                left = left.append_column(beside.schema.field(name), beside[name])
        row += batch.num_rows
        yield left
    if (pending is not None and len(pending)) or next(extra_iter, None) is not None:
        raise apply.FilterInputError(f"raw captions have more rows than stage 2 ({row})")


@dataclass(frozen=True)
class KeptQuality:
    """What the training-gate checks of filtered_pairs look at, read from the kept file."""

    mismatched_columns: list[str]
    empty_text_cells: int
    duplicate_ids: int


def _count(mask: pa.Array) -> int:
    return int(pc.sum(mask, min_count=0).as_py())


def _unsorted_duplicate_ids(path: Path) -> int:
    with duckdb.connect() as connection:
        row = connection.execute(
            f"SELECT count(*) - count(DISTINCT {schema.CAPTION_ID}) FROM read_parquet(?)",
            [str(path)],
        ).fetchone()
    assert row is not None
    return int(row[0])


def kept_quality(path: Path) -> KeptQuality:
    """Schema, null/empty texts and repeated ids of a kept file, read a row group at a time.

    The filter writes kept rows in caption_id order, so a repeated id is a neighbour of
    itself: DuckDB's count(DISTINCT) over a 5M-row kept file raised the stage's peak by
    310 MB (72 MB at 100k; still 230 MB at a 128 MB memory limit). A file not in that
    order has its ids counted by DuckDB.
    """
    source = pq.ParquetFile(path)
    found = source.schema_arrow
    mismatched = [
        field.name
        for field in schema.FILTERED_PAIRS_SCHEMA
        if field.name not in found.names or not found.field(field.name).type.equals(field.type)
    ]
    texts = [name for name in TEXT_COLUMNS if name in found.names]
    has_ids = schema.CAPTION_ID in found.names
    empty, repeats, ordered, last = 0, 0, True, pa.array([], pa.string())
    columns = [*texts, schema.CAPTION_ID] if has_ids else texts
    for batch in row_group_batches(source, STREAM_BATCH_ROWS, columns):
        for name in texts:
            cells = batch.column(name)
            empty += cells.null_count + _count(pc.equal(pc.utf8_length(cells.cast(pa.string())), 0))
        if has_ids:
            ids = pa.concat_arrays([last, batch.column(schema.CAPTION_ID).cast(pa.string())])
            before, after = ids.slice(0, len(ids) - 1), ids.slice(1)
            repeats += _count(pc.equal(before, after))
            ordered = ordered and _count(pc.greater(before, after)) == 0
            last = ids.slice(len(ids) - 1)
    if not has_ids:
        duplicates = source.metadata.num_rows
    elif ordered:
        duplicates = repeats
    else:
        duplicates = _unsorted_duplicate_ids(path)
    return KeptQuality(mismatched, empty, duplicates)
