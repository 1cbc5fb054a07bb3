"""The train / validation / test split: by normalised caption text, the same in every shard."""

from __future__ import annotations

import hashlib
import re

import pyarrow as pa
import pytest

from paraclip_pipeline import schema
from paraclip_pipeline.filtering.apply import apply_filter_rules
from paraclip_pipeline.filtering.features import normalise_texts
from paraclip_pipeline.filtering.split import assign_split
from paraclip_pipeline_tests.filtering.builders import pairs_table, rule, rule_set

TEXTS = [f"a photo of dog number {index} on the beach" for index in range(2000)]


def reference_split(text: str, validation: float, test: float, salt: str) -> str:
    """The documented definition, written with hashlib and re (ASCII texts only)."""
    normalised = " ".join(re.findall(r"[^\W_]+", text.lower()))
    bits = int(hashlib.md5(f"{salt}:{normalised}".encode()).hexdigest()[:16], 16)
    if bits < round(test * 2**64):
        return schema.TEST
    if bits < round((test + validation) * 2**64):
        return schema.VALIDATION
    return schema.TRAIN


def split(texts: list[str], validation: float = 0.1, test: float = 0.2, salt: str = "s") -> list:
    return assign_split(
        pa.array(texts), validation_fraction=validation, test_fraction=test, salt=salt
    ).to_pylist()


def test_split_matches_the_documented_hash_definition() -> None:
    sides = split(TEXTS, 0.1, 0.2, "salt-a")
    assert sides == [reference_split(text, 0.1, 0.2, "salt-a") for text in TEXTS]
    assert 0.07 < sides.count(schema.VALIDATION) / len(TEXTS) < 0.13
    assert 0.17 < sides.count(schema.TEST) / len(TEXTS) < 0.23


def test_case_punctuation_and_spacing_variants_land_on_one_side() -> None:
    variants = [
        "A dog, running on the beach.",
        "a dog running on the beach",
        "A DOG  running on the BEACH!",
    ]
    assert len(set(normalise_texts(variants))) == 1
    for salt in ("a", "b", "c", "d", "e", "f"):
        assert len(set(split(variants * 3, 0.3, 0.3, salt))) == 1


def test_split_is_the_same_whatever_the_shard_or_the_order() -> None:
    forward = dict(zip(TEXTS, split(TEXTS, 0.2, 0.3), strict=True))
    backward = TEXTS[::-1][:500]
    chunked = assign_split(
        pa.chunked_array([backward[:7], backward[7:]]),
        validation_fraction=0.2,
        test_fraction=0.3,
        salt="s",
    ).to_pylist()
    assert chunked == [forward[text] for text in backward]
    assert split(TEXTS, 0.2, 0.3, "other") != list(forward.values())


@pytest.mark.parametrize(
    ("validation", "test", "expected"),
    [(0.0, 0.0, {schema.TRAIN}), (0.0, 1.0, {schema.TEST}), (1.0, 0.0, {schema.VALIDATION})],
)
def test_split_extremes(validation: float, test: float, expected: set[str]) -> None:
    assert set(split(TEXTS[:50], validation, test)) == expected


def test_split_of_no_rows_and_bad_fractions() -> None:
    assert split([], 0.1, 0.1) == []
    with pytest.raises(ValueError, match="test_fraction must be within"):
        split(TEXTS[:3], 0.1, 1.5)
    with pytest.raises(ValueError, match="at most 1"):
        split(TEXTS[:3], 0.6, 0.6)


def test_the_same_caption_in_two_shards_gets_one_split() -> None:
    rows = [{schema.TEXT: f"caption number {index} of a dog"} for index in range(40)]
    rules = rule_set(
        rule("caption_length"),
        split={"validation_fraction": 0.3, "test_fraction": 0.3, "salt": "x"},
    )
    shard_a = apply_filter_rules(pairs_table(*rows), rules, None).kept
    shouted = [
        {schema.SHARD: "shard-b", schema.TEXT: row[schema.TEXT].upper() + "!"} for row in rows
    ]
    shard_b = apply_filter_rules(pairs_table(*shouted[::-1]), rules, None).kept
    by_text_a = dict(
        zip(
            normalise_texts(shard_a[schema.TEXT].to_pylist()),
            shard_a[schema.SPLIT].to_pylist(),
            strict=True,
        )
    )
    by_text_b = dict(
        zip(
            normalise_texts(shard_b[schema.TEXT].to_pylist()),
            shard_b[schema.SPLIT].to_pylist(),
            strict=True,
        )
    )
    assert by_text_a == by_text_b
    assert set(by_text_a.values()) == set(schema.SPLITS)
