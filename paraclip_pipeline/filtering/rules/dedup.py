"""The dedup set rule: duplicate pairs among the surviving rows, the first one kept."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import polars as pl
from pydantic import Field

from paraclip_pipeline import schema
from paraclip_pipeline.filtering import features as ft
from paraclip_pipeline.filtering.rules.base import TEXT_COLUMNS, SetRule, TextColumn

if TYPE_CHECKING:
    from paraclip_pipeline.modeling.sentence_encoder import SentenceEncoder


class DedupRule(SetRule):
    """Keeps the first row (by caption_id) of each group of duplicate pairs."""

    name: Literal["dedup"]
    columns: list[TextColumn] = Field(default=list(TEXT_COLUMNS), min_length=1)
    # true: texts equal after normalisation count as duplicates; false: exact equality only.
    normalised: bool = True

    def features(self) -> list[ft.Feature]:
        return [ft.words(column) for column in self.columns] if self.normalised else []

    def judge(self, alive: pl.DataFrame, encoder: SentenceEncoder | None) -> pl.Series:
        # Normalised keys are the word lists joined by spaces (words hold no spaces):
        # strings hash far faster than lists.
        key_names = [f"key_{column}" for column in self.columns]
        keyed = alive.select(
            pl.int_range(pl.len(), dtype=pl.UInt32).alias("position"),
            pl.col(schema.CAPTION_ID),
            *[
                (ft.words(c).column.list.join(" ") if self.normalised else pl.col(c)).alias(name)
                for c, name in zip(self.columns, key_names, strict=True)
            ],
        )
        key = pl.struct(key_names)
        # `alive` is in caption_id order, so the first of a group is its smallest caption_id;
        # the group's first id is looked up only among rows that have duplicates.
        duplicates = (
            keyed.filter(key.is_duplicated())
            .select(
                "position",
                key.is_first_distinct().alias("is_first"),
                pl.format(
                    "duplicate of {}", pl.col(schema.CAPTION_ID).first().over(key_names)
                ).alias("detail"),
            )
            .filter(~pl.col("is_first"))
        )
        verdicts = pl.repeat(None, alive.height, dtype=pl.String, eager=True)
        return verdicts.scatter(duplicates["position"], duplicates["detail"])
