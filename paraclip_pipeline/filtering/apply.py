"""Apply a RuleSet to one shard of (caption, T', T'') rows.

Rows are processed in caption_id order, so the output is the same whatever order the
input came in, and dedup keeps the smallest caption_id of each duplicate group. Row
rules run as one vectorised polars pass per run of consecutive row rules; set rules
(dedup, language, meaning) see only the rows no earlier rule rejected. Every input row
ends in exactly one of ``kept`` and ``rejected``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from paraclip_pipeline import schema
from paraclip_pipeline.filtering import features as ft
from paraclip_pipeline.filtering.rules import (
    TEXT_COLUMNS,
    FilterRulesError,
    RowRule,
    Rule,
    RuleSet,
    SetRule,
)
from paraclip_pipeline.filtering.split import assign_split

if TYPE_CHECKING:
    from paraclip_pipeline.modeling.sentence_encoder import SentenceEncoder

REJECT_DETAIL = "reject_detail"
# Safety net after all rules: a kept row must have a non-blank caption and paraphrases.
MISSING_TEXT_RULE = "missing_text"
MISSING_TEXT_DETAIL = "caption or a paraphrase is null or blank"
EXAMPLES_PER_RULE = 5
EXAMPLE_TEXT_CHARS = 60
OPTIONAL_COLUMNS = (schema.NSFW, schema.INPUT_ISSUE)
_ROW = "__row"
_STRING_TYPES = (pa.string(), pa.large_string(), pa.string_view())


class FilterInputError(ValueError):
    """The pairs table cannot be filtered; the message names the column and rows."""


@dataclass(frozen=True)
class FilterOutcome:
    kept: pa.Table  # schema.FILTERED_PAIRS_SCHEMA, in caption_id order
    rejected: pa.Table  # input columns + rejected_by + reject_detail, in caption_id order
    drop_counts: dict[str, int]  # every rule of the file (and missing_text), 0 when none
    examples: dict[str, list[str]]  # a few rejected rows per rule that rejected any
    pass_rate: float  # kept / input rows; 0.0 for an empty input


def _validated(pairs: pa.Table) -> pa.Table:
    """``pairs`` with its text columns as plain Arrow strings, or FilterInputError."""
    names = pairs.schema.names
    for reserved in (schema.REJECTED_BY, REJECT_DETAIL, _ROW):
        if reserved in names:
            raise FilterInputError(f"input already has the output column '{reserved}'")
    for field in schema.STAGE2_SCHEMA:
        if field.name not in names:
            raise FilterInputError(f"input lacks column '{field.name}' (have: {names})")
    for name in [field.name for field in schema.STAGE2_SCHEMA] + list(OPTIONAL_COLUMNS):
        if name in names and pairs.schema.field(name).type not in _STRING_TYPES:
            raise FilterInputError(
                f"column '{name}' must be a string column, got {pairs.schema.field(name).type}"
            )
    # large_string / string_view inputs become string: the Arrow kernels below need it.
    text_fields = [f for f in pairs.schema if f.type in _STRING_TYPES and f.type != pa.string()]
    for field in text_fields:
        index = pairs.schema.get_field_index(field.name)
        pairs = pairs.set_column(
            index, field.with_type(pa.string()), pairs[field.name].cast(pa.string())
        )
    for name in (schema.CAPTION_ID, schema.TEXT, schema.STATUS_1, schema.STATUS_2):
        nulls = pairs[name].null_count
        if nulls:
            first = pc.index(pc.is_null(pairs[name]), True).as_py()
            raise FilterInputError(f"column '{name}' has {nulls} null(s), first at row {first}")
    for name in (schema.STATUS_1, schema.STATUS_2):
        bad = pc.invert(pc.is_in(pairs[name], pa.array(schema.PARAPHRASE_STATUSES)))
        if pc.any(bad).as_py():
            row = pc.index(bad, True).as_py()
            raise FilterInputError(
                f"column '{name}' row {row} (caption_id {pairs[schema.CAPTION_ID][row]}) has "
                f"status {pairs[name][row]}; expected one of {schema.PARAPHRASE_STATUSES}"
            )
    return pairs


def _in_caption_id_order(pairs: pa.Table) -> pa.Table:
    ids = pairs[schema.CAPTION_ID]
    if len(ids) > 1 and not pc.all(pc.less_equal(ids[:-1], ids[1:])).as_py():
        pairs = pairs.take(pc.sort_indices(pairs, [(schema.CAPTION_ID, "ascending")]))
        ids = pairs[schema.CAPTION_ID]
    if len(ids) > 1:
        repeated = pc.equal(ids[:-1], ids[1:])
        if pc.any(repeated).as_py():
            first = ids[pc.index(repeated, True).as_py()]
            raise FilterInputError(f"caption_id must be unique; '{first}' appears more than once")
    return pairs


def _working_frame(pairs: pa.Table) -> pl.DataFrame:
    columns = [field.name for field in schema.STAGE2_SCHEMA]
    columns += [name for name in OPTIONAL_COLUMNS if name in pairs.schema.names]
    frame = pl.from_arrow(pairs.select(columns))
    assert isinstance(frame, pl.DataFrame)
    absent = [pl.lit(None, dtype=pl.String).alias(n) for n in OPTIONAL_COLUMNS if n not in columns]
    return frame.with_columns(absent).with_row_index(_ROW)


def _run_row_rules(frame: pl.DataFrame, rules: list[RowRule], rejected_by: pl.Series) -> pl.Series:
    """Give each still-unrejected row the name of the first of ``rules`` that rejects it."""
    if not rules:
        return rejected_by
    verdicts = [pl.lit(rejected_by)] + [
        pl.when(rule.reject()).then(pl.lit(rule.name)) for rule in rules
    ]
    return frame.select(pl.coalesce(verdicts).alias(schema.REJECTED_BY)).to_series()


def rule_verdicts(
    frame: pl.DataFrame,
    rules: list[Rule],
    encoder: SentenceEncoder | None,
    start: tuple[pl.Series, pl.Series] | None = None,
) -> tuple[pl.Series, pl.Series]:
    """(rejected_by, reject_detail) per row of ``frame`` after ``rules``, in order, on top
    of the verdicts in ``start``; null rejected_by means kept so far."""
    base_columns = frame.columns
    frame = ft.with_features(frame, [f for rule in rules for f in rule.features()])
    if start is None:
        start = (
            pl.repeat(None, frame.height, dtype=pl.String, eager=True),
            pl.repeat(None, frame.height, dtype=pl.String, eager=True),
        )
    rejected_by = start[0].clone().alias(schema.REJECTED_BY)
    details = start[1].clone().alias(REJECT_DETAIL)
    pending: list[RowRule] = []
    for rule in rules:
        if isinstance(rule, RowRule):
            pending.append(rule)
            continue
        assert isinstance(rule, SetRule)
        rejected_by = _run_row_rules(frame, pending, rejected_by)
        pending = []
        # Only the columns the rule reads, so filtering does not copy every feature list.
        needed = [*base_columns, *ft.feature_names(rule.features())]
        alive = frame.select(needed).filter(rejected_by.is_null())
        verdict = rule.judge(alive, encoder)
        if len(verdict) != alive.height:
            raise RuntimeError(f"rule '{rule.name}' judged {len(verdict)} of {alive.height} rows")
        hit = verdict.is_not_null()
        positions = alive[_ROW].filter(hit)
        rejected_by.scatter(positions, rule.name)
        details.scatter(positions, verdict.filter(hit))
    rejected_by = _run_row_rules(frame, pending, rejected_by)

    row_rules = [rule for rule in rules if isinstance(rule, RowRule)]
    by_row_rule = rejected_by.is_in([rule.name for rule in row_rules])
    if row_rules and by_row_rule.any():
        # Details are formatted only for the rows a row rule rejected, in one pass.
        rows = frame.with_columns(rejected_by).filter(by_row_rule)
        which = pl.col(schema.REJECTED_BY)
        chosen = pl.when(which == row_rules[0].name).then(row_rules[0].detail())
        for rule in row_rules[1:]:
            chosen = chosen.when(which == rule.name).then(rule.detail())
        details.scatter(rows[_ROW], rows.select(chosen).to_series())
    return rejected_by, details


def blank_text(frame: pl.DataFrame) -> pl.Series:
    """True where the caption or a paraphrase is null or blank (the ``missing_text`` net)."""
    blank = pl.any_horizontal(
        [pl.col(c).is_null() | (pl.col(c).str.strip_chars() == "") for c in TEXT_COLUMNS]
    )
    return frame.select(blank).to_series()


def _verdicts(
    frame: pl.DataFrame, rules: RuleSet, encoder: SentenceEncoder | None
) -> tuple[pl.Series, pl.Series]:
    """(rejected_by, reject_detail) per row of ``frame``; null rejected_by means kept."""
    rejected_by, details = rule_verdicts(frame, rules.enabled_rules, encoder)
    missing = blank_text(frame) & rejected_by.is_null()
    rejected_by.scatter(frame[_ROW].filter(missing), MISSING_TEXT_RULE)
    details.scatter(frame[_ROW].filter(missing), MISSING_TEXT_DETAIL)
    return rejected_by, details


def _example(row: dict[str, object]) -> str:
    def clip(value: object) -> str:
        text = "" if value is None else str(value)
        return text if len(text) <= EXAMPLE_TEXT_CHARS else text[: EXAMPLE_TEXT_CHARS - 1] + "…"

    texts = " / ".join(f'"{clip(row[c])}"' for c in TEXT_COLUMNS)
    return f"{row[schema.CAPTION_ID]}: {texts} ({row[REJECT_DETAIL]})"


def _kept_table(rows: pa.Table, split: pa.Array) -> pa.Table:
    arrays = [
        rows[field.name].cast(field.type)
        for field in schema.FILTERED_PAIRS_SCHEMA
        if field.name != schema.SPLIT
    ]
    return pa.Table.from_arrays([*arrays, split], schema=schema.FILTERED_PAIRS_SCHEMA)


def split_of(kept_rows: pa.Table, rules: RuleSet) -> pa.Array:
    """The train / validation / test side of each kept row, by its normalised caption text."""
    return assign_split(
        kept_rows[schema.TEXT],
        validation_fraction=rules.split.validation_fraction,
        test_fraction=rules.split.test_fraction,
        salt=rules.split.salt,
    )


def apply_filter_rules(
    pairs: pa.Table, rules: RuleSet, encoder: SentenceEncoder | None
) -> FilterOutcome:
    """Split ``pairs`` (STAGE2 columns + optional nsfw, input_issue) into kept and rejected.

    Raises FilterInputError for an unusable table and FilterRulesError when the meaning
    rule is enabled without an encoder.
    """
    if rules.needs_encoder and encoder is None:
        raise FilterRulesError(
            f"{rules.source}: the meaning_kept rule is enabled, so a SentenceEncoder is needed"
        )
    ordered = _in_caption_id_order(_validated(pairs))
    rejected_by, details = _verdicts(_working_frame(ordered), rules, encoder)

    is_kept = rejected_by.is_null()
    kept_rows = ordered.filter(is_kept.to_arrow())
    split = split_of(kept_rows, rules)
    verdicts = pl.DataFrame([rejected_by, details]).filter(~is_kept)
    rejected = ordered.filter(pc.invert(is_kept.to_arrow()))
    for name in (schema.REJECTED_BY, REJECT_DETAIL):
        rejected = rejected.append_column(
            pa.field(name, pa.string()), verdicts[name].to_arrow().cast(pa.string())
        )

    counts = dict(verdicts[schema.REJECTED_BY].value_counts().iter_rows())
    drop_counts = {name: counts.get(name, 0) for name in [*rules.rule_names, MISSING_TEXT_RULE]}
    example_rows = (
        pl.from_arrow(rejected.select([schema.CAPTION_ID, *TEXT_COLUMNS, *verdicts.columns]))
        .group_by(schema.REJECTED_BY, maintain_order=True)
        .head(EXAMPLES_PER_RULE)
    )
    examples: dict[str, list[str]] = {}
    for row in example_rows.iter_rows(named=True):
        examples.setdefault(row[schema.REJECTED_BY], []).append(_example(row))
    return FilterOutcome(
        kept=_kept_table(kept_rows, split),
        rejected=rejected,
        drop_counts=drop_counts,
        examples=examples,
        pass_rate=len(kept_rows) / len(pairs) if len(pairs) else 0.0,
    )
