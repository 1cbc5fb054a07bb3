"""The meaning-kept set rule: sentence-embedding cosine of each paraphrase with the caption."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
import polars as pl
from pydantic import Field

from paraclip_pipeline.filtering.rules.base import (
    PARAPHRASE_COLUMNS,
    TEXT_COLUMNS,
    FilterRulesError,
    SetRule,
)

if TYPE_CHECKING:
    from paraclip_pipeline.modeling.sentence_encoder import SentenceEncoder


class MeaningKeptRule(SetRule):
    """Each paraphrase's sentence-embedding cosine with the caption at or above a threshold."""

    name: Literal["meaning_kept"]
    min_cosine: float = Field(default=0.4, ge=-1.0, le=1.0)

    def judge(self, alive: pl.DataFrame, encoder: SentenceEncoder | None) -> pl.Series:
        from paraclip_pipeline.modeling.sentence_encoder import paired_cosine

        if encoder is None:
            raise FilterRulesError(
                f"rule '{self.name}' is enabled but no sentence encoder was given"
            )
        height = alive.height
        texts = [alive[column].fill_null("").to_list() for column in TEXT_COLUMNS]
        # One encode call for all three columns: texts shared between them are encoded once.
        embeddings = encoder.encode(texts[0] + texts[1] + texts[2])
        caption = embeddings[:height]
        cosines = {
            column: paired_cosine(caption, embeddings[(i + 1) * height : (i + 2) * height])
            for i, column in enumerate(PARAPHRASE_COLUMNS)
        }
        verdicts: list[str | None] = [None] * height
        for column, values in cosines.items():
            for position in np.flatnonzero(values < self.min_cosine):
                verdicts[position] = verdicts[position] or (
                    f"cosine(text, {column})={values[position]:.3f} < {self.min_cosine}"
                )
        return pl.Series(verdicts, dtype=pl.String)
