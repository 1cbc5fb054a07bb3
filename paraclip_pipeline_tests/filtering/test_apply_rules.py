"""Each lexical rule on crafted rows, attribution, conservation of rows, bad input."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from paraclip_pipeline import schema
from paraclip_pipeline.filtering.apply import (
    MISSING_TEXT_RULE,
    REJECT_DETAIL,
    FilterInputError,
    FilterOutcome,
    apply_filter_rules,
)
from paraclip_pipeline.filtering.rules import FilterRulesError, RuleSet
from paraclip_pipeline_tests.filtering.builders import pairs_table, rule, rule_set


def verdicts(outcome: FilterOutcome) -> dict[str, str | None]:
    """caption_id -> name of the rule that rejected it, None when kept."""
    found: dict[str, str | None] = dict.fromkeys(outcome.kept[schema.CAPTION_ID].to_pylist())
    rejected = outcome.rejected
    found.update(
        zip(
            rejected[schema.CAPTION_ID].to_pylist(),
            rejected[schema.REJECTED_BY].to_pylist(),
            strict=True,
        )
    )
    return dict(sorted(found.items()))


def run(rules: RuleSet, *rows: dict[str, Any]) -> FilterOutcome:
    outcome = apply_filter_rules(pairs_table(*rows), rules, None)
    assert len(outcome.kept) + len(outcome.rejected) == len(rows)
    return outcome


def rejected_by(rules: RuleSet, *rows: dict[str, Any]) -> list[str | None]:
    return list(verdicts(run(rules, *rows)).values())


def test_good_row_passes_every_lexical_rule() -> None:
    rules = rule_set(
        rule("caption_input_issue"),
        rule("nsfw"),
        rule("paraphrase_status"),
        rule("caption_length"),
        rule("paraphrase_length"),
        rule("prompt_leftover", phrases=["paraphrase"]),
        rule("copy"),
        rule("lexical_change"),
        rule("dedup"),
    )
    outcome = run(rules, {})
    assert outcome.kept.schema == schema.FILTERED_PAIRS_SCHEMA
    assert outcome.pass_rate == 1.0
    assert outcome.drop_counts == dict.fromkeys([*rules.rule_names, MISSING_TEXT_RULE], 0)


def test_caption_input_issue() -> None:
    assert rejected_by(
        rule_set(rule("caption_input_issue")), {}, {schema.INPUT_ISSUE: "overlong caption"}
    ) == [None, "caption_input_issue"]


def test_nsfw_tags_case_insensitive_and_null_kept() -> None:
    rows = [{schema.NSFW: tag} for tag in ("NSFW", "unsure ", "UNLIKELY", None, "")]
    assert rejected_by(rule_set(rule("nsfw")), *rows) == ["nsfw", "nsfw", None, None, None]
    only_nsfw = rule_set(rule("nsfw", drop_tags=["nsfw"]))
    assert rejected_by(only_nsfw, *rows) == ["nsfw", None, None, None, None]


def test_paraphrase_status_either_step() -> None:
    rows = [
        {},
        {schema.STATUS_1: "refused", schema.PARAPHRASE_1: None, schema.STATUS_2: "skipped"},
        {schema.STATUS_2: "echo"},
        {schema.STATUS_2: "error", schema.PARAPHRASE_2: None},
    ]
    outcome = run(rule_set(rule("paraphrase_status")), *rows)
    assert list(verdicts(outcome).values()) == [None, *["paraphrase_status"] * 3]
    assert outcome.rejected[REJECT_DETAIL][0].as_py() == "status_1=refused, status_2=skipped"
    allow_echo = rule_set(rule("paraphrase_status", allowed=["ok", "echo"]))
    assert rejected_by(allow_echo, *rows)[2] is None


@pytest.mark.parametrize(
    ("caption", "verdict"),
    [
        ("dog", "caption_length"),  # 1 token: the paper keeps more than 1
        ("two dogs", None),
        (" ".join(["word"] * 15), None),  # at most 15
        (" ".join(["word"] * 16), "caption_length"),
        ("", "caption_length"),
        ("   \t ", "caption_length"),
        ("!!! ???", None),  # punctuation-only tokens are whitespace tokens too
        ("Ein  Hund\tspielt", None),  # any whitespace separates
        ("东京 夜景", None),
    ],
)
def test_caption_length_counts_whitespace_tokens(caption: str, verdict: str | None) -> None:
    assert rejected_by(rule_set(rule("caption_length")), {schema.TEXT: caption}) == [verdict]


def test_paraphrase_length_checks_both_paraphrases_and_null() -> None:
    rules = rule_set(rule("paraphrase_length", min_tokens=2, max_tokens=4))
    rows = [
        {schema.PARAPHRASE_1: "a b", schema.PARAPHRASE_2: "c d e f"},
        {schema.PARAPHRASE_1: "a", schema.PARAPHRASE_2: "c d"},
        {schema.PARAPHRASE_1: "a b", schema.PARAPHRASE_2: "c d e f g"},
        {schema.PARAPHRASE_1: None, schema.PARAPHRASE_2: "c d"},
    ]
    outcome = run(rules, *rows)
    assert list(verdicts(outcome).values()) == [None, *["paraphrase_length"] * 3]
    details = outcome.rejected[REJECT_DETAIL].to_pylist()
    assert details[0] == "paraphrase_1 has 1 whitespace tokens, allowed 2-4"
    assert details[1] == "paraphrase_2 has 5 whitespace tokens, allowed 2-4"


def test_prompt_leftover_word_boundaries_case_and_unicode() -> None:
    rules = rule_set(rule("prompt_leftover", phrases=["paraphrase", "the given caption", "é.t"]))
    rows = [
        {schema.PARAPHRASE_1: "Here is a PARAPHRASE: a dog"},
        {schema.PARAPHRASE_2: "A dog, as the given caption says"},
        {schema.PARAPHRASE_1: "A dog paraphrased nothing"},  # not the word "paraphrase"
        {schema.PARAPHRASE_2: "Her paraphrasebook"},
        {schema.PARAPHRASE_2: "Café É.T. sign"},  # regex characters are literal
        {schema.PARAPHRASE_2: "Café éxt sign"},
        {schema.TEXT: "paraphrase of a dog"},  # only paraphrases are checked
    ]
    outcome = run(rules, *rows)
    assert list(verdicts(outcome).values()) == [
        "prompt_leftover",
        "prompt_leftover",
        None,
        None,
        "prompt_leftover",
        None,
        None,
    ]
    assert outcome.rejected[REJECT_DETAIL].to_pylist() == [
        "paraphrase_1 contains 'PARAPHRASE'",
        "paraphrase_2 contains 'the given caption'",
        "paraphrase_2 contains 'É.T'",
    ]


def test_copy_identical_after_normalisation_and_near_identical() -> None:
    caption = "A brown dog, running on the beach!"
    rows = [
        {schema.TEXT: caption, schema.PARAPHRASE_1: "a  BROWN dog running on the beach"},
        {schema.TEXT: caption, schema.PARAPHRASE_1: "On the beach a brown dog running"},
        {schema.TEXT: caption, schema.PARAPHRASE_1: "A brown dog is running on the beach"},
        {schema.TEXT: caption, schema.PARAPHRASE_1: "A brown puppy races across the sand"},
        # T'' is compared with T', not with the caption.
        {schema.PARAPHRASE_1: "Chien brun!", schema.PARAPHRASE_2: "chien — brun"},
        {schema.TEXT: "!!!", schema.PARAPHRASE_1: "...", schema.PARAPHRASE_2: "x y"},
        {schema.TEXT: "Ünïcödé café", schema.PARAPHRASE_1: "ÜNÏCÖDÉ CAFÉ."},
    ]
    outcome = run(rule_set(rule("copy", near_identical_jaccard=0.85)), *rows)
    assert list(verdicts(outcome).values()) == [
        "copy",
        "copy",
        "copy",  # 7 of 8 words shared: 0.875
        None,
        "copy",
        "copy",  # no words on either side: identical after normalisation
        "copy",
    ]
    details = outcome.rejected[REJECT_DETAIL].to_pylist()
    assert details[0] == "paraphrase_1 identical to text after normalisation"
    assert details[1] == "paraphrase_1 word Jaccard 1.0 with text >= 0.85"
    assert details[2] == "paraphrase_1 word Jaccard 0.875 with text >= 0.85"
    assert details[3] == "paraphrase_2 identical to paraphrase_1 after normalisation"
    exact_only = rule_set(rule("copy", near_identical_jaccard=None))
    assert rejected_by(exact_only, *rows) == ["copy", None, None, None, "copy", "copy", "copy"]


def test_round_trip_drops_t2_equal_to_the_caption_after_normalisation() -> None:
    caption = "A brown dog, running on the beach!"
    t1 = "A tan hound sprinting along the shore"
    rows = [
        {schema.TEXT: caption, schema.PARAPHRASE_1: t1, schema.PARAPHRASE_2: caption},
        # Case, punctuation and spacing are folded.
        {
            schema.TEXT: caption,
            schema.PARAPHRASE_1: t1,
            schema.PARAPHRASE_2: "a brown  DOG running on the beach",
        },
        # One word differs: not a round trip (the copy / lexical rules judge it).
        {
            schema.TEXT: caption,
            schema.PARAPHRASE_1: t1,
            schema.PARAPHRASE_2: "A brown dog running on the sand",
        },
        # Word order counts: the same words reordered are a rewording.
        {
            schema.TEXT: caption,
            schema.PARAPHRASE_1: t1,
            schema.PARAPHRASE_2: "On the beach a brown dog running",
        },
        {},
    ]
    rules = rule_set(rule("copy"), rule("round_trip"))
    outcome = run(rules, *rows)
    assert list(verdicts(outcome).values()) == ["round_trip", "round_trip", None, None, None]
    assert (
        outcome.rejected[REJECT_DETAIL].to_pylist()
        == ["paraphrase_2 identical to text after normalisation"] * 2
    )
    assert outcome.drop_counts["round_trip"] == 2
    # Without the rule the same rows pass the copy rule: T'' differs from T'.
    assert rejected_by(rule_set(rule("copy")), *rows) == [None] * 5


def test_lexical_change_bounds_on_word_jaccard_of_the_two_paraphrases() -> None:
    rules = rule_set(
        rule("lexical_change", min_jaccard=0.1, max_jaccard=0.5, content_words_only=False)
    )
    rows = [
        {schema.PARAPHRASE_1: "a b c d", schema.PARAPHRASE_2: "a b e f"},  # 2/6
        {schema.PARAPHRASE_1: "a b c d", schema.PARAPHRASE_2: "a b c e"},  # 3/5
        {schema.PARAPHRASE_1: "a b c d", schema.PARAPHRASE_2: "w x y z"},  # 0
        {schema.PARAPHRASE_1: "A, b. C", schema.PARAPHRASE_2: "a b"},  # 2/3
    ]
    outcome = run(rules, *rows)
    assert list(verdicts(outcome).values()) == [None, *["lexical_change"] * 3]
    assert outcome.rejected[REJECT_DETAIL][0].as_py() == (
        "word Jaccard of paraphrase_1 and paraphrase_2 is 0.6, allowed 0.1-0.5"
    )


def test_lexical_change_on_content_words_ignores_stop_words() -> None:
    rules = rule_set(rule("lexical_change", max_jaccard=0.5))
    rows = [
        # All words: 6 of 8 shared; content words {dog, beach, sun} vs {canine, shore, sun}: 0.2.
        {
            schema.PARAPHRASE_1: "a dog on the beach in the sun",
            schema.PARAPHRASE_2: "a canine on the shore in the sun",
        },
        # Content words {red, car, street} vs {red, car, road}: 2/4 = 0.5, allowed.
        {
            schema.PARAPHRASE_1: "a red car on a street",
            schema.PARAPHRASE_2: "the red car on a road",
        },
        # Only stop words changed: content sets equal, 1.0.
        {schema.PARAPHRASE_1: "a cat on a mat", schema.PARAPHRASE_2: "the cat upon the mat"},
    ]
    outcome = run(rules, *rows)
    assert list(verdicts(outcome).values()) == [None, None, "lexical_change"]
    assert outcome.rejected[REJECT_DETAIL][0].as_py() == (
        "word Jaccard of paraphrase_1 and paraphrase_2 is 1.0, allowed 0.0-0.5 (content words)"
    )


def test_dedup_keeps_first_by_caption_id_whatever_the_input_order() -> None:
    rows = [
        {},
        {schema.PARAPHRASE_2: "Brown canine, dashing along the SEASHORE!"},  # normalised duplicate
        {schema.TEXT: "Another caption entirely"},
        {},  # exact duplicate
    ]
    table = pairs_table(*rows)
    reversed_table = table.take(pa.array([3, 2, 1, 0]))
    for pairs in (table, reversed_table):
        outcome = apply_filter_rules(pairs, rule_set(rule("dedup")), None)
        assert outcome.kept[schema.CAPTION_ID].to_pylist() == ["c000", "c002"]
        assert outcome.rejected[REJECT_DETAIL].to_pylist() == ["duplicate of c000"] * 2
    exact = rule_set(rule("dedup", normalised=False))
    assert rejected_by(exact, *rows) == [None, None, None, "dedup"]
    captions_only = rule_set(rule("dedup", columns=["text"]))
    assert rejected_by(captions_only, *rows) == [None, "dedup", None, "dedup"]


def test_dedup_ignores_rows_rejected_by_earlier_rules() -> None:
    rules = rule_set(rule("nsfw"), rule("dedup"))
    assert rejected_by(rules, {schema.NSFW: "NSFW"}, {}) == ["nsfw", None]


def test_first_rule_in_file_order_is_recorded() -> None:
    row = {schema.TEXT: "dog", schema.NSFW: "NSFW", schema.PARAPHRASE_1: "dog"}
    length_first = rule_set(rule("caption_length"), rule("nsfw"), rule("copy"))
    nsfw_first = rule_set(rule("nsfw"), rule("copy"), rule("caption_length"))
    copy_first = rule_set(rule("copy"), rule("caption_length"), rule("nsfw"))
    assert rejected_by(length_first, row) == ["caption_length"]
    assert rejected_by(nsfw_first, row) == ["nsfw"]
    assert rejected_by(copy_first, row) == ["copy"]


def test_disabled_rule_rejects_nothing_but_is_counted() -> None:
    rules = rule_set(rule("nsfw", enabled=False), rule("caption_length"))
    outcome = run(rules, {schema.NSFW: "NSFW"}, {schema.TEXT: "dog"})
    assert list(verdicts(outcome).values()) == [None, "caption_length"]
    assert outcome.drop_counts == {"nsfw": 0, "caption_length": 1, MISSING_TEXT_RULE: 0}
    assert outcome.pass_rate == 0.5


def test_missing_text_safety_net_when_no_rule_catches_it() -> None:
    rows = [{schema.PARAPHRASE_2: None, schema.STATUS_2: "error"}, {schema.PARAPHRASE_1: "  "}, {}]
    outcome = run(rule_set(rule("nsfw")), *rows)
    assert list(verdicts(outcome).values()) == [MISSING_TEXT_RULE, MISSING_TEXT_RULE, None]
    assert outcome.kept.schema == schema.FILTERED_PAIRS_SCHEMA


def test_outputs_columns_counts_and_examples() -> None:
    rows = [{}, {schema.TEXT: "dog"}, {schema.TEXT: "cat"}, {schema.NSFW: "NSFW"}] * 3
    outcome = run(rule_set(rule("nsfw"), rule("caption_length")), *rows)
    assert outcome.kept.schema == schema.FILTERED_PAIRS_SCHEMA
    assert outcome.rejected.schema.names == [
        *pairs_table({}).schema.names,
        schema.REJECTED_BY,
        REJECT_DETAIL,
    ]
    assert outcome.drop_counts == {"nsfw": 3, "caption_length": 6, MISSING_TEXT_RULE: 0}
    assert outcome.pass_rate == pytest.approx(3 / 12)
    assert set(outcome.examples) == {"nsfw", "caption_length"}
    assert len(outcome.examples["caption_length"]) == 5
    assert outcome.examples["nsfw"][0].startswith('c003: "A brown dog running on a sandy beach"')
    assert outcome.examples["nsfw"][0].endswith("(nsfw=NSFW)")


def test_empty_input_and_optional_columns_absent() -> None:
    empty = pairs_table().select([field.name for field in schema.STAGE2_SCHEMA])
    outcome = apply_filter_rules(empty, rule_set(rule("nsfw"), rule("dedup")), None)
    assert len(outcome.kept) == len(outcome.rejected) == 0
    assert outcome.pass_rate == 0.0
    bare = pairs_table({}, {schema.NSFW: "NSFW"}).drop_columns([schema.NSFW, schema.INPUT_ISSUE])
    outcome = apply_filter_rules(bare, rule_set(rule("nsfw"), rule("caption_input_issue")), None)
    assert len(outcome.kept) == 2


@pytest.mark.parametrize("string_type", [pa.large_string(), pa.string_view()])
def test_other_arrow_string_types_and_chunks(string_type: pa.DataType) -> None:
    table = pairs_table({}, {schema.TEXT: "dog"}, {schema.NSFW: "NSFW"}, {})
    fields = [f.with_type(string_type) if f.type == pa.string() else f for f in table.schema]
    chunked = pa.concat_tables([table.slice(0, 2), table.slice(2)]).cast(pa.schema(fields))
    rules = rule_set(rule("nsfw"), rule("caption_length"), rule("dedup"))
    outcome = apply_filter_rules(chunked, rules, None)
    assert outcome.kept.schema == schema.FILTERED_PAIRS_SCHEMA
    assert verdicts(outcome) == {
        "c000": None,
        "c001": "caption_length",
        "c002": "nsfw",
        "c003": "dedup",
    }


def test_rerun_is_identical() -> None:
    rows = [
        {},
        {schema.TEXT: "dog"},
        {schema.PARAPHRASE_2: "Brown canine dashing along the seashore."},
    ]
    rules = rule_set(rule("caption_length"), rule("dedup"))
    first, second = run(rules, *rows), run(rules, *rows)
    assert first.kept.equals(second.kept) and first.rejected.equals(second.rejected)


def test_meaning_rule_without_encoder_is_refused() -> None:
    with pytest.raises(FilterRulesError, match="meaning_kept rule is enabled"):
        apply_filter_rules(pairs_table({}), rule_set(rule("meaning_kept")), None)
    disabled = rule_set(rule("meaning_kept", enabled=False))
    assert len(apply_filter_rules(pairs_table({}), disabled, None).kept) == 1


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda t: t.drop_columns([schema.STATUS_2]), "lacks column 'status_2'"),
        (lambda t: t.set_column(2, schema.TEXT, pa.array([1, 2])), "'text' must be a string"),
        (lambda t: t.set_column(0, schema.CAPTION_ID, pa.array(["c", "c"])), "'c' appears more"),
        (
            lambda t: t.set_column(4, schema.STATUS_1, pa.array(["ok", "fine"])),
            r"'status_1' row 1 \(caption_id c001\) has status fine",
        ),
        (
            lambda t: t.set_column(2, schema.TEXT, pa.array(["a b", None])),
            "column 'text' has 1 null",
        ),
        (
            lambda t: t.append_column(schema.REJECTED_BY, pa.array(["x", "y"])),
            "already has the output column 'rejected_by'",
        ),
    ],
)
def test_bad_input_is_a_clear_error(mutate: Any, expected: str) -> None:
    table = mutate(pairs_table({}, {}))
    with pytest.raises(FilterInputError, match=expected):
        apply_filter_rules(table, rule_set(rule("nsfw")), None)
