"""Row rules on the words: lengths, prompt leftovers, copies and how much step 2 reworded.

Each is a vectorised polars expression over the shard; the text features they share
(word lists, word sets, Jaccard indices) come from ``filtering.features``, computed
once per shard.
"""

from __future__ import annotations

import re
from typing import ClassVar, Literal

import polars as pl
from pydantic import Field, model_validator

from paraclip_pipeline import schema
from paraclip_pipeline.filtering import features as ft
from paraclip_pipeline.filtering.rules.base import PARAPHRASE_COLUMNS, PARAPHRASE_SOURCES, RowRule


def _fmt(value: pl.Expr, decimals: int = 3) -> pl.Expr:
    return value.round(decimals).cast(pl.String)


class _TokenBoundsRule(RowRule):
    """Whitespace token count of each checked column within [min_tokens, max_tokens]."""

    checked_columns: ClassVar[tuple[str, ...]]
    min_tokens: int = Field(ge=0)
    max_tokens: int = Field(ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> _TokenBoundsRule:
        if self.min_tokens > self.max_tokens:
            raise ValueError(f"min_tokens {self.min_tokens} > max_tokens {self.max_tokens}")
        return self

    def _out_of_bounds(self, column: str) -> pl.Expr:
        count = ft.whitespace_token_count(column).column
        return (count < self.min_tokens) | (count > self.max_tokens)

    def features(self) -> list[ft.Feature]:
        return [ft.whitespace_token_count(column) for column in self.checked_columns]

    def reject(self) -> pl.Expr:
        return pl.any_horizontal([self._out_of_bounds(c) for c in self.checked_columns])

    def detail(self) -> pl.Expr:
        return pl.coalesce(
            [
                pl.when(self._out_of_bounds(column)).then(
                    pl.format(
                        "{} has {} whitespace tokens, allowed {}-{}",
                        pl.lit(column),
                        ft.whitespace_token_count(column).column,
                        pl.lit(self.min_tokens),
                        pl.lit(self.max_tokens),
                    )
                )
                for column in self.checked_columns
            ]
        )


class CaptionLengthRule(_TokenBoundsRule):
    name: Literal["caption_length"]
    checked_columns: ClassVar[tuple[str, ...]] = (schema.TEXT,)
    # The paper's pre-filter: more than 1 and at most 15 whitespace tokens.
    min_tokens: int = Field(default=2, ge=0)
    max_tokens: int = Field(default=15, ge=1)


class ParaphraseLengthRule(_TokenBoundsRule):
    name: Literal["paraphrase_length"]
    checked_columns: ClassVar[tuple[str, ...]] = PARAPHRASE_COLUMNS
    min_tokens: int = Field(default=2, ge=0)
    max_tokens: int = Field(default=25, ge=1)


def _phrase_pattern(phrases: list[str]) -> str:
    """Case-insensitive regex for any phrase, anchored at word boundaries where it has them."""
    alternatives = []
    for phrase in phrases:
        start = r"\b" if re.match(r"\w", phrase) else ""
        end = r"\b" if re.search(r"\w$", phrase) else ""
        alternatives.append(start + re.escape(phrase) + end)
    return "(?i)(" + "|".join(alternatives) + ")"


class PromptLeftoverRule(RowRule):
    """Drops paraphrases that still contain words of the prompt or LLM chatter."""

    name: Literal["prompt_leftover"]
    phrases: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _no_blank_phrase(self) -> PromptLeftoverRule:
        if any(not phrase.strip() for phrase in self.phrases):
            raise ValueError("phrases must not contain an empty or blank phrase")
        return self

    def reject(self) -> pl.Expr:
        pattern = _phrase_pattern(self.phrases)
        return pl.any_horizontal(
            [pl.col(c).str.contains(pattern).fill_null(False) for c in PARAPHRASE_COLUMNS]
        )

    def detail(self) -> pl.Expr:
        pattern = _phrase_pattern(self.phrases)
        return pl.coalesce(
            [
                pl.format("{} contains '{}'", pl.lit(c), pl.col(c).str.extract(pattern, 1))
                for c in PARAPHRASE_COLUMNS
            ]
        )


class CopyRule(RowRule):
    """Drops a paraphrase that is (nearly) its source: T' vs caption, T'' vs T'."""

    name: Literal["copy"]
    # null: only copies identical after normalisation are rejected.
    near_identical_jaccard: float | None = Field(default=0.9, gt=0.0, le=1.0)

    def features(self) -> list[ft.Feature]:
        if self.near_identical_jaccard is None:
            return [ft.same_normalised(src, para) for src, para in PARAPHRASE_SOURCES]
        # Identical after normalisation implies a Jaccard of 1, so the Jaccard decides alone.
        return [ft.word_jaccard(src, para) for src, para in PARAPHRASE_SOURCES]

    def _is_copy(self, source: str, paraphrase: str) -> pl.Expr:
        if self.near_identical_jaccard is None:
            return ft.same_normalised(source, paraphrase).column
        return ft.word_jaccard(source, paraphrase).column >= self.near_identical_jaccard

    def reject(self) -> pl.Expr:
        return pl.any_horizontal([self._is_copy(src, para) for src, para in PARAPHRASE_SOURCES])

    def detail(self) -> pl.Expr:
        messages = []
        for source, paraphrase in PARAPHRASE_SOURCES:
            identical = ft.words(source).column == ft.words(paraphrase).column
            messages.append(
                pl.when(identical).then(
                    pl.lit(f"{paraphrase} identical to {source} after normalisation")
                )
            )
            if self.near_identical_jaccard is not None:
                jaccard = ft.word_jaccard(source, paraphrase).column
                messages.append(
                    pl.when(jaccard >= self.near_identical_jaccard).then(
                        pl.format(
                            "{} word Jaccard {} with {} >= {}",
                            pl.lit(paraphrase),
                            _fmt(jaccard),
                            pl.lit(source),
                            pl.lit(self.near_identical_jaccard),
                        )
                    )
                )
        return pl.coalesce(messages)


class LexicalChangeRule(RowRule):
    """Step 2 must reword: word Jaccard of T' and T'' within [min_jaccard, max_jaccard].

    With ``content_words_only`` (the default) stop words are left out of both sets, so
    the score measures whether the words that carry meaning were replaced.
    """

    name: Literal["lexical_change"]
    min_jaccard: float = Field(default=0.0, ge=0.0, le=1.0)
    max_jaccard: float = Field(default=0.5, ge=0.0, le=1.0)
    content_words_only: bool = True

    @model_validator(mode="after")
    def _ordered(self) -> LexicalChangeRule:
        if self.min_jaccard > self.max_jaccard:
            raise ValueError(f"min_jaccard {self.min_jaccard} > max_jaccard {self.max_jaccard}")
        return self

    def _jaccard(self) -> ft.Feature:
        measure = ft.content_word_jaccard if self.content_words_only else ft.word_jaccard
        return measure(schema.PARAPHRASE_1, schema.PARAPHRASE_2)

    def features(self) -> list[ft.Feature]:
        return [self._jaccard()]

    def reject(self) -> pl.Expr:
        jaccard = self._jaccard().column
        return (jaccard < self.min_jaccard) | (jaccard > self.max_jaccard)

    def detail(self) -> pl.Expr:
        return pl.format(
            "word Jaccard of paraphrase_1 and paraphrase_2 is {}, allowed {}-{}"
            + (" (content words)" if self.content_words_only else ""),
            _fmt(self._jaccard().column),
            pl.lit(self.min_jaccard),
            pl.lit(self.max_jaccard),
        )
