"""Vectorised text features (polars expressions) that the lexical filter rules compare.

A feature is a named derived column. Rules declare the features they read; the filter
computes each needed feature once per shard, level by level (a feature's inputs first),
so two rules that compare the same pair of columns share one token-set computation.

Definitions (documented in docs/filtering.md):
- whitespace tokens: maximal runs of non-whitespace, as ``str.split()`` counts them (the
  paper's caption length);
- words: the lowercased text cut at whitespace and punctuation, in order; joined by single
  spaces they are the "normalised" text (case folded, punctuation stripped, whitespace
  collapsed), so two texts are identical after normalisation when their word lists are equal;
- word overlap: Jaccard index of the two word sets; two texts without any words overlap fully.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

# Unicode punctuation (\p{P}) and whitespace separate words; symbols and emoji stay words.
WORD_PATTERN = r"[^\s\p{P}]+"
WHITESPACE_TOKEN_PATTERN = r"\S+"
FEATURE_PREFIX = "__feature_"


@dataclass(frozen=True, eq=False)
class Feature:
    """A derived column: its name, the expression computing it, and the features it reads."""

    name: str
    expr: pl.Expr
    inputs: tuple[Feature, ...] = field(default=())

    @property
    def column(self) -> pl.Expr:
        return pl.col(self.name)

    @property
    def level(self) -> int:
        return 1 + max((item.level for item in self.inputs), default=-1)


def whitespace_token_count(column: str) -> Feature:
    """Number of whitespace-separated tokens; a null text has none."""
    return Feature(
        f"{FEATURE_PREFIX}ntokens_{column}",
        pl.col(column).str.count_matches(WHITESPACE_TOKEN_PATTERN).fill_null(0),
    )


def word_list(text: pl.Expr) -> pl.Expr:
    """Lowercased words of ``text`` in order; a null text has none."""
    return text.fill_null("").str.to_lowercase().str.extract_all(WORD_PATTERN)


def normalised_text(text: pl.Expr) -> pl.Expr:
    """The normalised text: case folded, punctuation stripped, whitespace collapsed.

    The one definition of "the same caption" that the dedup and round-trip rules, the
    train / validation / test split, cross-shard training dedup and the report's leakage
    check share, so "A dog, running." and "a  dog running" are one text everywhere.
    """
    return word_list(text).list.join(" ")


def normalise_texts(texts: Iterable[str | None]) -> list[str]:
    """``normalised_text`` of each of ``texts`` (same order), for callers without a frame."""
    series = pl.Series("text", list(texts), dtype=pl.String)
    return pl.select(normalised_text(pl.lit(series))).to_series().to_list()


def words(column: str) -> Feature:
    """Lowercased words in order (the normalised text as a list); a null text has none."""
    return Feature(f"{FEATURE_PREFIX}words_{column}", word_list(pl.col(column)))


def word_set(column: str) -> Feature:
    source = words(column)
    return Feature(
        f"{FEATURE_PREFIX}wordset_{column}", source.column.list.unique(), inputs=(source,)
    )


def same_normalised(left: str, right: str) -> Feature:
    """True when both texts are identical after normalisation (equal word lists)."""
    a, b = words(left), words(right)
    return Feature(
        f"{FEATURE_PREFIX}same_{left}_{right}",
        a.column == b.column,
        inputs=(a, b),
    )


def shared_words(left: str, right: str) -> Feature:
    """Number of distinct words the two texts have in common."""
    a, b = word_set(left), word_set(right)
    return Feature(
        f"{FEATURE_PREFIX}shared_{left}_{right}",
        a.column.list.set_intersection(b.column).list.len(),
        inputs=(a, b),
    )


def word_jaccard(left: str, right: str) -> Feature:
    """Jaccard index of the two word sets, in [0, 1]; 1.0 when neither text has a word."""
    a, b, shared = word_set(left), word_set(right), shared_words(left, right)
    union = a.column.list.len() + b.column.list.len() - shared.column
    return Feature(
        f"{FEATURE_PREFIX}jaccard_{left}_{right}",
        pl.when(union == 0).then(pl.lit(1.0)).otherwise(shared.column / union),
        inputs=(a, b, shared),
    )


@functools.cache
def _english_stop_words() -> list[str]:
    """spaCy's English stop-word list (it ships with the library, no model download).

    The list's module is loaded from its file, without importing the ``spacy`` package:
    that import pulls in spaCy's whole stack, 720 MB of resident memory measured in every
    process that filters, for a list of 326 words.
    """
    spec = importlib.util.find_spec("spacy")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("spacy is needed for its English stop-word list")
    path = Path(next(iter(spec.submodule_search_locations))) / "lang" / "en" / "stop_words.py"
    module_spec = importlib.util.spec_from_file_location("_paraclip_spacy_stop_words", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return sorted(module.STOP_WORDS)


def content_word_set(column: str) -> Feature:
    """Distinct words minus English stop words: what a rewording has to change.

    In a short caption "a", "in", "the" make up half the word set, so a Jaccard over all
    words says little about whether the content words were replaced.
    """
    source = word_set(column)
    # A hash lookup per word; set_difference against a broadcast literal list measured 10x slower.
    keep = ~pl.element().is_in(_english_stop_words())
    return Feature(
        f"{FEATURE_PREFIX}contentset_{column}",
        source.column.list.eval(pl.element().filter(keep)),
        inputs=(source,),
    )


def content_word_jaccard(left: str, right: str) -> Feature:
    """Jaccard index of the two content-word sets; 1.0 when neither has a content word."""
    a, b = content_word_set(left), content_word_set(right)
    shared = a.column.list.set_intersection(b.column).list.len()
    union = a.column.list.len() + b.column.list.len() - shared
    return Feature(
        f"{FEATURE_PREFIX}contentjaccard_{left}_{right}",
        pl.when(union == 0).then(pl.lit(1.0)).otherwise(shared / union),
        inputs=(a, b),
    )


def _closure(features: Iterable[Feature]) -> dict[str, Feature]:
    """The features and, recursively, their inputs, by name."""
    by_name: dict[str, Feature] = {}
    pending = list(features)
    while pending:
        feature = pending.pop()
        if feature.name not in by_name:
            by_name[feature.name] = feature
            pending.extend(feature.inputs)
    return by_name


def feature_names(features: Iterable[Feature]) -> list[str]:
    """Column names of the features and everything they are computed from."""
    return sorted(_closure(features))


def with_features(frame: pl.DataFrame, features: Iterable[Feature]) -> pl.DataFrame:
    """``frame`` plus every feature in ``features`` and their inputs, each computed once.

    Features of one level are computed together in one ``with_columns``, so polars runs
    them in parallel and later levels read the materialised columns instead of
    recomputing them.
    """
    levels: dict[int, list[Feature]] = {}
    for feature in _closure(features).values():
        levels.setdefault(feature.level, []).append(feature)
    for level in sorted(levels):
        frame = frame.with_columns([feature.expr.alias(feature.name) for feature in levels[level]])
    return frame
