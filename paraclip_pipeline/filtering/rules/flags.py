"""Row rules on what the earlier steps flagged: the caption's input issue, its NSFW tag,
the paraphrase statuses."""

from __future__ import annotations

from typing import Literal

import polars as pl
from pydantic import Field

from paraclip_pipeline import schema
from paraclip_pipeline.filtering.rules.base import RowRule


class CaptionInputIssueRule(RowRule):
    name: Literal["caption_input_issue"]

    def reject(self) -> pl.Expr:
        return pl.col(schema.INPUT_ISSUE).is_not_null()

    def detail(self) -> pl.Expr:
        return pl.format("input_issue={}", pl.col(schema.INPUT_ISSUE))


class NsfwRule(RowRule):
    """Drops rows whose source NSFW tag (LAION: NSFW / UNSURE / UNLIKELY) is in a set."""

    name: Literal["nsfw"]
    drop_tags: list[str] = Field(default=["NSFW", "UNSURE"], min_length=1)

    def reject(self) -> pl.Expr:
        tags = [tag.strip().upper() for tag in self.drop_tags]
        return pl.col(schema.NSFW).str.strip_chars().str.to_uppercase().is_in(tags).fill_null(False)

    def detail(self) -> pl.Expr:
        return pl.format("nsfw={}", pl.col(schema.NSFW))


class ParaphraseStatusRule(RowRule):
    """Drops rows whose paraphrase steps did not both end in an allowed status."""

    name: Literal["paraphrase_status"]
    allowed: list[Literal[schema.PARAPHRASE_STATUSES]] = Field(  # type: ignore[valid-type]
        default=["ok"], min_length=1
    )

    def reject(self) -> pl.Expr:
        return ~(pl.col(schema.STATUS_1).is_in(self.allowed)) | ~(
            pl.col(schema.STATUS_2).is_in(self.allowed)
        )

    def detail(self) -> pl.Expr:
        return pl.format(
            "status_1={}, status_2={}", pl.col(schema.STATUS_1), pl.col(schema.STATUS_2)
        )
