"""Filter rules as versioned data: the models of ``data/filter_rules.yaml`` and its loader.

Each rule is a pydantic model named by its ``name`` (one rule of each name per file),
with its parameters, an ``enabled`` switch and a ``reason``. Rules run in file order
and a rejected row records the first rule that rejected it.

Two kinds of rule:
- row rules decide each row alone, as polars expressions over the whole shard
  (vectorised; this is where the throughput is);
- set rules need the rows that survived the rules before them: dedup compares rows
  with each other, and the language and meaning rules run models, which should only
  see rows still in play.
"""

from __future__ import annotations

import hashlib
import json
import re
from abc import abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, get_args

import numpy as np
import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from paraclip_pipeline import schema
from paraclip_pipeline.filtering import features as ft
from paraclip_pipeline.filtering.language import UnknownLanguageError, guess_languages

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


def _fmt(value: pl.Expr, decimals: int = 3) -> pl.Expr:
    return value.round(decimals).cast(pl.String)


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


RULE_TYPES: dict[str, type[Rule]] = {
    get_args(model.model_fields["name"].annotation)[0]: model
    for model in (
        CaptionInputIssueRule,
        NsfwRule,
        ParaphraseStatusRule,
        CaptionLengthRule,
        ParaphraseLengthRule,
        PromptLeftoverRule,
        CopyRule,
        LexicalChangeRule,
        DedupRule,
        LanguageRule,
        MeaningKeptRule,
    )
}


class SplitConfig(BaseModel):
    """Held-out share of kept rows, by a hash of caption_id (see assign_split)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    heldout_fraction: float = Field(default=0.1, ge=0.0, le=1.0)
    # Changing the salt re-draws which rows are held out.
    salt: str = "paraclip-split-v1"


class PassRateConfig(BaseModel):
    """Bounds on the share of rows kept, for the blocking asset check."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min: float = Field(default=0.1, ge=0.0, le=1.0)
    max: float = Field(default=1.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> PassRateConfig:
        if self.min > self.max:
            raise ValueError(f"min {self.min} > max {self.max}")
        return self


TOP_LEVEL_KEYS = {"version", "rules", "split", "pass_rate"}


class RuleSet(BaseModel):
    """A parsed rules file: ordered rules, split and pass-rate bounds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    rules: tuple[Rule, ...]
    split: SplitConfig = SplitConfig()
    pass_rate: PassRateConfig = PassRateConfig()
    source: str = Field(default="<memory>", exclude=True, description="Where it was read from.")

    @model_validator(mode="after")
    def _unique_names(self) -> RuleSet:
        names = [rule.name for rule in self.rules]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"each rule may appear once; repeated: {repeated}")
        return self

    @property
    def rule_names(self) -> list[str]:
        return [rule.name for rule in self.rules]

    @property
    def enabled_rules(self) -> list[Rule]:
        return [rule for rule in self.rules if rule.enabled]

    @property
    def needs_encoder(self) -> bool:
        return any(isinstance(rule, MeaningKeptRule) for rule in self.enabled_rules)

    @property
    def pass_rate_bounds(self) -> tuple[float, float]:
        return (self.pass_rate.min, self.pass_rate.max)

    def canonical(self) -> dict[str, Any]:
        """What the content hash covers: everything that can change the filter's output.

        Defaults are filled in (writing a default out does not change the hash); a
        rule's ``reason`` and the file's comments, spacing and key order are not
        covered; a disabled rule contributes only its name and position.
        """
        return {
            "version": self.version,
            "rules": [
                rule.model_dump(mode="json", exclude={"reason"})
                if rule.enabled
                else {"name": rule.name, "enabled": False}
                for rule in self.rules
            ],
            "split": self.split.model_dump(mode="json"),
            "pass_rate": self.pass_rate.model_dump(mode="json"),
        }

    @property
    def content_hash(self) -> str:
        dump = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(dump.encode("utf-8")).hexdigest()


def _describe(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or 'value'}: {item['msg']}"
        for item in error.errors()
    )


def _parse_rule(path: Path, index: int, entry: object) -> Rule:
    where = f"{path}: rule #{index + 1}"
    if not isinstance(entry, dict):
        raise FilterRulesError(f"{where}: expected a mapping with a 'name', got {entry!r}")
    name = entry.get("name")
    if name not in RULE_TYPES:
        raise FilterRulesError(
            f"{where}: unknown rule {name!r}; known rules: {', '.join(RULE_TYPES)}"
        )
    try:
        return RULE_TYPES[name].model_validate(entry)
    except ValidationError as error:
        raise FilterRulesError(f"{where} '{name}': {_describe(error)}") from error


def parse_rules(document: object, path: Path) -> RuleSet:
    """A RuleSet from an already-parsed YAML document (``path`` is for messages)."""
    if not isinstance(document, dict):
        raise FilterRulesError(f"{path}: expected a mapping at the top level")
    unknown = sorted(set(document) - TOP_LEVEL_KEYS)
    if unknown:
        raise FilterRulesError(f"{path}: unknown top-level key(s) {unknown}")
    entries = document.get("rules")
    if not isinstance(entries, list):
        raise FilterRulesError(f"{path}: 'rules' must be a list of rules")
    rules = tuple(_parse_rule(path, index, entry) for index, entry in enumerate(entries))
    try:
        return RuleSet.model_validate({**document, "rules": rules, "source": str(path)})
    except ValidationError as error:
        raise FilterRulesError(f"{path}: {_describe(error)}") from error


def load_rules(path: Path) -> RuleSet:
    """Read and validate a rules file; any problem raises FilterRulesError naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise FilterRulesError(f"{path}: cannot read the rules file: {error}") from error
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise FilterRulesError(f"{path}: YAML syntax error{where}: {problem}") from error
    return parse_rules(document, path)
