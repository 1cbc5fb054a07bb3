"""The language set rule: langid, restricted to candidate languages, on the surviving rows."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

import polars as pl
from pydantic import Field, model_validator

from paraclip_pipeline.filtering import features as ft
from paraclip_pipeline.filtering.language import UnknownLanguageError, guess_languages
from paraclip_pipeline.filtering.rules.base import (
    TEXT_COLUMNS,
    FilterRulesError,
    SetRule,
    TextColumn,
)

if TYPE_CHECKING:
    from paraclip_pipeline.modeling.sentence_encoder import SentenceEncoder


class LanguageRule(SetRule):
    """Drops rows with a text that langid reads, confidently, as a language not kept."""

    name: Literal["language"]
    keep: list[str] = Field(default=["en"], min_length=1)
    candidates: list[str] = Field(
        default=["en", "de", "fr", "es", "it", "pt", "nl", "ru", "ja", "zh", "ko"],
        description="The languages langid may answer (restricted set).",
    )
    columns: list[TextColumn] = Field(default=list(TEXT_COLUMNS), min_length=1)
    # Shorter texts are not judged: langid is close to guessing on two or three words.
    min_tokens: int = Field(default=4, ge=1)
    min_probability: float = Field(default=0.9, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _codes(self) -> LanguageRule:
        bad = [
            code for code in self.keep + self.candidates if not re.fullmatch(r"[a-z]{2,3}", code)
        ]
        if bad:
            raise ValueError(f"language codes must be lowercase ISO 639 codes, got {bad}")
        missing = sorted(set(self.keep) - set(self.candidates))
        if missing:
            raise ValueError(f"keep languages {missing} are not in candidates")
        return self

    def features(self) -> list[ft.Feature]:
        return [ft.whitespace_token_count(column) for column in self.columns]

    def judge(self, alive: pl.DataFrame, encoder: SentenceEncoder | None) -> pl.Series:
        verdicts: list[str | None] = [None] * alive.height
        for column in self.columns:
            judged = alive.select(
                pl.int_range(pl.len()).alias("position"),
                pl.col(column).alias("value"),
                ft.whitespace_token_count(column).column.alias("tokens"),
            ).filter(pl.col("tokens") >= self.min_tokens)
            try:
                guesses = guess_languages(judged["value"].to_list(), self.candidates)
            except UnknownLanguageError as error:
                raise FilterRulesError(f"rule '{self.name}': {error}") from error
            for position, guess in zip(judged["position"].to_list(), guesses, strict=True):
                foreign = guess.language not in self.keep
                if foreign and guess.probability >= self.min_probability:
                    verdicts[position] = verdicts[position] or (
                        f"{column} reads as '{guess.language}' (p={guess.probability:.3f})"
                    )
        return pl.Series(verdicts, dtype=pl.String)
