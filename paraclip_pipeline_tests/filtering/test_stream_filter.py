"""stream_filter_rules equals apply_filter_rules: same rows, order, verdicts, hashes (issue 14)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from paraclip_pipeline import schema
from paraclip_pipeline.filtering.apply import FilterInputError, apply_filter_rules
from paraclip_pipeline.filtering.stream import stream_filter_rules
from paraclip_pipeline.storage import table_fingerprint
from paraclip_pipeline_tests.filtering.builders import pairs_table, rule, rule_set

RULES = rule_set(
    rule("caption_input_issue"),
    rule("nsfw"),
    rule("paraphrase_status"),
    rule("copy"),
    rule("dedup"),  # row rules after dedup must not steal its verdicts
    rule("caption_length", min_tokens=2, max_tokens=9),
    rule("lexical_change", min_jaccard=0.0, max_jaccard=0.8),
)


def _rows() -> list[dict[str, Any]]:
    kinds: list[dict[str, Any]] = [
        {},
        {schema.NSFW: "NSFW"},
        {schema.STATUS_2: "error", schema.PARAPHRASE_2: None},
        {schema.PARAPHRASE_2: "A brown dog runs along the sandy shore"},  # copy of T'
        {schema.TEXT: "a  BROWN dog, running on a sandy beach!"},  # duplicate when normalised
        {schema.TEXT: "one two three four five six seven eight nine ten eleven"},
        {schema.PARAPHRASE_2: "   "},  # blank, status ok: the missing_text net
        {schema.INPUT_ISSUE: "empty", schema.TEXT: ""},
    ]
    rows = [dict(kinds[i % len(kinds)]) for i in range(61)]
    for index, row in enumerate(rows):
        if index % 3 == 0:  # distinct texts, some long enough for caption_length
            row.setdefault(schema.TEXT, f"a photo of item {index} on a shelf " + "x " * (index % 5))
    return rows


def _shuffled(table: pa.Table) -> pa.Table:
    order = list(range(len(table)))
    random.Random(7).shuffle(order)
    return table.take(order)


@pytest.mark.parametrize("batch_rows", [1, 7, 1000])
def test_streaming_equals_in_memory(tmp_path: Path, batch_rows: int) -> None:
    table = _shuffled(pairs_table(*_rows()))
    expected = apply_filter_rules(table, RULES, None)
    kept, rejected = tmp_path / "kept.parquet", tmp_path / "rejected.parquet"
    outcome = stream_filter_rules(
        [pa.Table.from_batches([b]) for b in table.to_batches(max_chunksize=batch_rows)],
        RULES,
        None,
        kept_target=kept,
        rejected_target=rejected,
        batch_rows=batch_rows,
        work_dir=tmp_path,
    )
    assert pq.read_table(kept).equals(expected.kept)
    assert pq.read_table(rejected).equals(expected.rejected)
    assert outcome.kept_fingerprint == table_fingerprint(expected.kept)
    assert outcome.rejected_fingerprint == table_fingerprint(expected.rejected)
    assert outcome.drop_counts == expected.drop_counts
    assert outcome.examples == expected.examples
    assert outcome.pass_rate == expected.pass_rate
    assert outcome.rows_in == len(table)
    assert {"dedup", "missing_text", "caption_length"} <= {
        name for name, count in outcome.drop_counts.items() if count
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.parquet", "rejected.parquet"]


def test_a_caption_id_repeated_across_batches_is_refused(tmp_path: Path) -> None:
    table = pairs_table({}, {})
    twice = [table.slice(0, 1), table.slice(0, 1)]
    with pytest.raises(FilterInputError, match="'c000' appears more than once"):
        stream_filter_rules(
            twice,
            RULES,
            None,
            kept_target=tmp_path / "k.parquet",
            rejected_target=tmp_path / "r.parquet",
            batch_rows=10,
        )
    assert not (tmp_path / "k.parquet").exists()
