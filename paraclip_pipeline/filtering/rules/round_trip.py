"""The round-trip row rule: step 2 must not undo step 1.

Step 2 rewrites T' "avoiding use of existing words"; a rewriter that swaps each word back
returns the caption itself. Such a T'' passes the copy rule (it differs from T') but makes
L1(image, T'') and L3(T', T'') train on the original caption again, so the pair teaches no
paraphrase. Issue 13 counted 36 of 183 kept demo pairs with T'' equal to the caption.
"""

from __future__ import annotations

from typing import Literal

import polars as pl

from paraclip_pipeline import schema
from paraclip_pipeline.filtering import features as ft
from paraclip_pipeline.filtering.rules.base import RowRule


class RoundTripRule(RowRule):
    """Drops a row whose T'' equals its caption after normalisation (case, punctuation, spacing)."""

    name: Literal["round_trip"]

    def features(self) -> list[ft.Feature]:
        return [ft.same_normalised(schema.TEXT, schema.PARAPHRASE_2)]

    def reject(self) -> pl.Expr:
        return ft.same_normalised(schema.TEXT, schema.PARAPHRASE_2).column

    def detail(self) -> pl.Expr:
        return pl.lit("paraphrase_2 identical to text after normalisation")
