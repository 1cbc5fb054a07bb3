"""Loading the rules file: the shipped file, clear errors, and the content-hash policy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from paraclip_pipeline.filtering.rules import (
    RULE_TYPES,
    CopyRule,
    FilterRulesError,
    MeaningKeptRule,
    load_rules,
)

SHIPPED = Path(__file__).resolve().parents[2] / "data" / "filter_rules.yaml"

BASE = """\
version: 1
rules:
  - name: caption_length   # the paper's pre-filter
    reason: too short or too long
    min_tokens: 2
    max_tokens: 15
  - name: copy
    reason: copies teach nothing
    near_identical_jaccard: 0.9
  - name: meaning_kept
    enabled: false
    reason: needs MiniLM
    min_cosine: 0.5
split:
  test_fraction: 0.1
pass_rate:
  min: 0.2
  max: 1.0
"""


def test_shipped_rules_file_loads_with_every_rule_in_order() -> None:
    rules = load_rules(SHIPPED)
    assert rules.rule_names == list(RULE_TYPES)
    assert all(rule.enabled and rule.reason for rule in rules.rules)
    assert rules.pass_rate_bounds == (0.1, 1.0)
    assert (rules.split.validation_fraction, rules.split.test_fraction) == (0.1, 0.25)
    assert rules.needs_encoder
    assert len(rules.content_hash) == 64


def test_parsed_parameters_and_disabled_rule(write_rules: Callable[[str], Path]) -> None:
    rules = load_rules(write_rules(BASE))
    copy_rule = rules.rules[1]
    assert isinstance(copy_rule, CopyRule) and copy_rule.near_identical_jaccard == 0.9
    assert isinstance(rules.rules[2], MeaningKeptRule) and not rules.rules[2].enabled
    assert not rules.needs_encoder
    assert [rule.name for rule in rules.enabled_rules] == ["caption_length", "copy"]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("name: copy", "name: copyy"), r"rule #2: unknown rule 'copyy'; known rules: "),
        (("max_tokens: 15", "max_tokens: fifteen"), r"rule #1 'caption_length': max_tokens: "),
        (("max_tokens: 15", "max_tokens: 1"), r"'caption_length': .*min_tokens 2 > max_tokens 1"),
        (("near_identical_jaccard: 0.9", "near_identical_jaccard: 1.5"), r"'copy': near_ident"),
        (("near_identical_jaccard: 0.9", "jacard: 0.9"), r"'copy': jacard: Extra inputs"),
        (("    reason: copies teach nothing\n", ""), r"'copy': reason: Field required"),
        (("test_fraction: 0.1", "test_fraction: 2"), r"split.test_fraction"),
        (
            ("test_fraction: 0.1", "test_fraction: 0.95"),
            r"split: .*test_fraction = [0-9.]+ exceeds 1",
        ),
        (("max: 1.0", "max: 0.1"), r"pass_rate: .*min 0.2 > max 0.1"),
        (("version: 1", "version: 1\nextra_section: {}"), r"unknown top-level key.*extra_sec"),
        (
            (
                "name: meaning_kept\n    enabled: false\n    reason: needs MiniLM\n"
                "    min_cosine: 0.5",
                "name: copy\n    reason: twice",
            ),
            r"repeated: \[.copy.\]",
        ),
    ],
)
def test_bad_rules_file_names_file_and_rule(
    write_rules: Callable[[str], Path], edit: tuple[str, str], expected: str
) -> None:
    old, new = edit
    assert old in BASE
    path = write_rules(BASE.replace(old, new, 1))
    with pytest.raises(FilterRulesError, match=expected) as caught:
        load_rules(path)
    assert str(path) in str(caught.value)


def test_yaml_syntax_error_names_file_and_line(write_rules: Callable[[str], Path]) -> None:
    path = write_rules(BASE.replace("min_tokens: 2", "min_tokens: [2"))
    with pytest.raises(FilterRulesError, match=r"YAML syntax error at line \d+, column \d+"):
        load_rules(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("version: 1\nrules: 3\n", "'rules' must be a list of rules"),
        ("- a list\n", "expected a mapping at the top level"),
        ("version: 1\nrules:\n  - copy\n", "rule #1: expected a mapping with a 'name'"),
        ("version: 2\nrules: []\n", "version: Input should be 1"),
    ],
)
def test_bad_document_shape(write_rules: Callable[[str], Path], text: str, expected: str) -> None:
    with pytest.raises(FilterRulesError, match=expected):
        load_rules(write_rules(text))


def test_missing_file_is_a_rules_error(tmp_path: Path) -> None:
    with pytest.raises(FilterRulesError, match="cannot read the rules file"):
        load_rules(tmp_path / "absent.yaml")


def test_language_codes_are_checked_at_load(write_rules: Callable[[str], Path]) -> None:
    body = BASE.replace(
        "split:",
        "  - name: language\n    reason: english\n    keep: [fr]\n    candidates: [en, de]\nsplit:",
    )
    with pytest.raises(FilterRulesError, match=r"keep languages \['fr'\] are not in candidates"):
        load_rules(write_rules(body))
    with pytest.raises(FilterRulesError, match="lowercase ISO 639"):
        load_rules(write_rules(body.replace("keep: [fr]", "keep: [EN]")))


def _hash(write_rules: Callable[[str], Path], text: str) -> str:
    return load_rules(write_rules(text)).content_hash


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("# the paper's pre-filter", "# a different comment"),  # comments
        ("version: 1\n", "version: 1\n\n\n"),  # blank lines and spacing
        ("    reason: copies teach nothing", "    reason: a reworded reason"),  # reasons
        ("max_tokens: 15", "max_tokens:    15"),
        ("near_identical_jaccard: 0.9", "near_identical_jaccard: 0.90"),  # same number
        ("    min_tokens: 2\n    max_tokens: 15\n", ""),  # spelled-out defaults
        ("min_cosine: 0.5", "min_cosine: 0.8"),  # parameter of a disabled rule
        ("  min_tokens: 2\n    max_tokens: 15", "  max_tokens: 15\n    min_tokens: 2"),  # key order
    ],
)
def test_hash_ignores_edits_that_cannot_change_output(
    write_rules: Callable[[str], Path], old: str, new: str
) -> None:
    assert old in BASE
    assert _hash(write_rules, BASE.replace(old, new, 1)) == _hash(write_rules, BASE)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("max_tokens: 15", "max_tokens: 16"),  # a threshold
        ("near_identical_jaccard: 0.9", "near_identical_jaccard: 0.85"),
        ("    enabled: false\n", ""),  # enabling a rule
        ("test_fraction: 0.1", "test_fraction: 0.2"),
        ("test_fraction: 0.1", "test_fraction: 0.1\n  validation_fraction: 0.2"),
        ("min: 0.2", "min: 0.3"),  # pass-rate bounds
    ],
)
def test_hash_changes_with_anything_that_changes_output(
    write_rules: Callable[[str], Path], old: str, new: str
) -> None:
    assert old in BASE
    assert _hash(write_rules, BASE.replace(old, new, 1)) != _hash(write_rules, BASE)


def test_hash_changes_with_rule_order(write_rules: Callable[[str], Path]) -> None:
    head, caption_length, copy, tail = BASE.split("  - name: ")
    reordered = "  - name: ".join([head, copy, caption_length, tail])
    assert sorted(reordered.splitlines()) == sorted(BASE.splitlines())
    assert _hash(write_rules, reordered) != _hash(write_rules, BASE)
