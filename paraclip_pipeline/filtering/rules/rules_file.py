"""The rules file: every rule kind by name, the file's model (``RuleSet``), its content
hash and the loader that names the file and rule in every error."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from paraclip_pipeline.filtering.rules.base import FilterRulesError, Rule
from paraclip_pipeline.filtering.rules.dedup import DedupRule
from paraclip_pipeline.filtering.rules.flags import (
    CaptionInputIssueRule,
    NsfwRule,
    ParaphraseStatusRule,
)
from paraclip_pipeline.filtering.rules.language import LanguageRule
from paraclip_pipeline.filtering.rules.lexical import (
    CaptionLengthRule,
    CopyRule,
    LexicalChangeRule,
    ParaphraseLengthRule,
    PromptLeftoverRule,
)
from paraclip_pipeline.filtering.rules.meaning import MeaningKeptRule
from paraclip_pipeline.filtering.rules.round_trip import RoundTripRule

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
        RoundTripRule,
        LexicalChangeRule,
        DedupRule,
        LanguageRule,
        MeaningKeptRule,
    )
}


class SplitConfig(BaseModel):
    """Validation and test shares of kept rows, by a hash of the normalised caption text
    (see assign_split); the rest is trained on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    validation_fraction: float = Field(default=0.1, ge=0.0, le=1.0)
    test_fraction: float = Field(default=0.1, ge=0.0, le=1.0)
    # Changing the salt re-draws which captions are held out.
    salt: str = "paraclip-split-v2"

    @model_validator(mode="after")
    def _fractions_fit(self) -> SplitConfig:
        if self.validation_fraction + self.test_fraction > 1.0:
            raise ValueError(
                f"validation_fraction + test_fraction = "
                f"{self.validation_fraction + self.test_fraction} exceeds 1"
            )
        return self


class PassRateConfig(BaseModel):
    """Bounds on the share of rows kept, for the pass-rate check that gates training."""

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
