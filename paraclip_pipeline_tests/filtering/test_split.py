"""The train / held-out split: deterministic, stable and as large as configured."""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pytest

from paraclip_pipeline import schema
from paraclip_pipeline.filtering.apply import apply_filter_rules
from paraclip_pipeline.filtering.split import HELDOUT, TRAIN, assign_split
from paraclip_pipeline_tests.filtering.builders import pairs_table, rule, rule_set

IDS = [f"shard-7/{index:05d}" for index in range(2000)]


def reference_split(caption_id: str, fraction: float, salt: str) -> str:
    """The documented definition, written with hashlib."""
    bits = int(hashlib.md5(f"{salt}:{caption_id}".encode()).hexdigest()[:16], 16)
    return HELDOUT if bits < round(fraction * 2**64) else TRAIN


def test_split_matches_the_documented_hash_definition() -> None:
    split = assign_split(pa.array(IDS), 0.1, "salt-a").to_pylist()
    assert split == [reference_split(caption_id, 0.1, "salt-a") for caption_id in IDS]
    assert 0.07 < split.count(HELDOUT) / len(IDS) < 0.13


def test_split_depends_only_on_id_and_salt() -> None:
    forward = dict(zip(IDS, assign_split(pa.array(IDS), 0.3, "s").to_pylist(), strict=True))
    backward_ids = IDS[::-1][:500]
    backward = assign_split(pa.chunked_array([backward_ids[:7], backward_ids[7:]]), 0.3, "s")
    assert all(
        forward[i] == side for i, side in zip(backward_ids, backward.to_pylist(), strict=True)
    )
    resalted = assign_split(pa.array(IDS), 0.3, "other").to_pylist()
    assert resalted != list(forward.values())


@pytest.mark.parametrize(("fraction", "expected"), [(0.0, {TRAIN}), (1.0, {HELDOUT})])
def test_split_extremes(fraction: float, expected: set[str]) -> None:
    assert set(assign_split(pa.array(IDS[:50]), fraction, "s").to_pylist()) == expected


def test_split_of_no_rows_and_bad_fraction() -> None:
    assert len(assign_split(pa.array([], pa.string()), 0.1, "s")) == 0
    with pytest.raises(ValueError, match="heldout_fraction"):
        assign_split(pa.array(IDS[:3]), 1.5, "s")


def test_kept_rows_carry_the_split_of_their_caption_id() -> None:
    rows = [{schema.TEXT: f"caption number {index} of a dog"} for index in range(40)]
    rules = rule_set(rule("caption_length"), split={"heldout_fraction": 0.5, "salt": "x"})
    kept = apply_filter_rules(pairs_table(*rows), rules, None).kept
    for caption_id, side in zip(
        kept[schema.CAPTION_ID].to_pylist(), kept[schema.SPLIT].to_pylist(), strict=True
    ):
        assert side == reference_split(caption_id, 0.5, "x")
    assert set(kept[schema.SPLIT].to_pylist()) == {TRAIN, HELDOUT}
