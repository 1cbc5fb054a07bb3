"""stream_filter_rules equals apply_filter_rules: same rows, order, verdicts, hashes (issue 14)."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from paraclip_pipeline import schema
from paraclip_pipeline.filtering import id_ranges
from paraclip_pipeline.filtering.apply import REJECT_DETAIL, FilterInputError, apply_filter_rules
from paraclip_pipeline.filtering.stream import stream_filter_rules
from paraclip_pipeline.hex_ranges import range_numbers
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


def _hex_ids(table: pa.Table) -> pa.Table:
    """``table`` with caption ids spread like real ones (16 hex digits of blake2b)."""
    ids = [hashlib.blake2b(str(i).encode(), digest_size=8).hexdigest() for i in range(len(table))]
    index = table.schema.get_field_index(schema.CAPTION_ID)
    return table.set_column(index, table.schema.field(index), pa.array(ids, pa.string()))


def _filtered(table: pa.Table, directory: Path) -> tuple[bytes, bytes]:
    directory.mkdir()
    kept, rejected = directory / "kept.parquet", directory / "rejected.parquet"
    stream_filter_rules(
        [table.slice(start, 16) for start in range(0, len(table), 16)],
        RULES,
        None,
        kept_target=kept,
        rejected_target=rejected,
        batch_rows=16,
        work_dir=directory,
    )
    return kept.read_bytes(), rejected.read_bytes()


def test_caption_id_ranges_give_the_one_range_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = _hex_ids(_shuffled(pairs_table(*_rows())))
    whole = _filtered(table, tmp_path / "whole")
    monkeypatch.setattr(id_ranges, "RANGE_ROWS", 4)  # 16 id ranges, 8 dedup key parts
    bounds = id_ranges.id_bounds(len(table))
    assert len(bounds) == 15
    ranged = _filtered(table, tmp_path / "ranged")
    assert ranged == whole
    expected = apply_filter_rules(table, RULES, None)
    assert pq.read_table(tmp_path / "ranged" / "kept.parquet").equals(expected.kept)
    duplicates = expected.rejected.filter(pc.equal(expected.rejected[schema.REJECTED_BY], "dedup"))
    first_ids = pc.replace_substring(duplicates[REJECT_DETAIL], "duplicate of ", "")
    crossing = range_numbers(duplicates[schema.CAPTION_ID], bounds) != range_numbers(
        first_ids, bounds
    )
    assert crossing.any()  # key groups that span caption-id ranges


def test_a_repeated_caption_id_is_refused_in_its_range(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = _hex_ids(pairs_table(*_rows()))
    repeated = sorted(table[schema.CAPTION_ID].to_pylist())[40]
    monkeypatch.setattr(id_ranges, "RANGE_ROWS", 4)
    twice = pa.concat_tables([table, table.filter(pc.equal(table[schema.CAPTION_ID], repeated))])
    with pytest.raises(FilterInputError, match=f"'{repeated}' appears more than once"):
        _filtered(twice, tmp_path / "out")
