"""What every rule is: a named, switchable pydantic model with a reason; row and set rules.

Row rules decide each row alone as polars expressions over the whole shard; set rules
judge the rows that survived the rules before them (see the package docstring).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from paraclip_pipeline import schema
from paraclip_pipeline.filtering import features as ft

if TYPE_CHECKING:
    from paraclip_pipeline.modeling.sentence_encoder import SentenceEncoder

TEXT_COLUMNS = (schema.TEXT, schema.PARAPHRASE_1, schema.PARAPHRASE_2)
PARAPHRASE_COLUMNS = (schema.PARAPHRASE_1, schema.PARAPHRASE_2)
# Each paraphrase against the text it was made from: caption -> T', T' -> T''.
PARAPHRASE_SOURCES = (
    (schema.TEXT, schema.PARAPHRASE_1),
    (schema.PARAPHRASE_1, schema.PARAPHRASE_2),
)
TextColumn = Literal["text", "paraphrase_1", "paraphrase_2"]


class FilterRulesError(ValueError):
    """The rules file cannot be used; the message names the file and the rule."""


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    enabled: bool = True
    reason: str = Field(min_length=1, description="Why the rule exists (not hashed).")

    def features(self) -> list[ft.Feature]:
        """Derived columns the rule reads (computed once per shard for all rules)."""
        return []


class RowRule(Rule):
    """A rule that decides each row on its own, as a vectorised polars expression."""

    @abstractmethod
    def reject(self) -> pl.Expr:
        """Boolean expression, true where the row is rejected."""

    @abstractmethod
    def detail(self) -> pl.Expr:
        """String expression saying why; evaluated only on the rows this rule rejected."""


class SetRule(Rule):
    """A rule that judges the surviving rows together (dedup) or with a model."""

    @abstractmethod
    def judge(self, alive: pl.DataFrame, encoder: SentenceEncoder | None) -> pl.Series:
        """One string per row of ``alive``: why it is rejected, or null to keep it."""
