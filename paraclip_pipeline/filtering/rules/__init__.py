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

One module per kind of rule (``flags``, ``lexical``, ``round_trip``, ``dedup``,
``language``, ``meaning``), the base classes in ``base`` and the file model in ``rules_file``.
"""

from paraclip_pipeline.filtering.rules.base import (
    PARAPHRASE_COLUMNS,
    PARAPHRASE_SOURCES,
    TEXT_COLUMNS,
    FilterRulesError,
    RowRule,
    Rule,
    SetRule,
    TextColumn,
)
from paraclip_pipeline.filtering.rules.dedup import (
    DedupRule,
)
from paraclip_pipeline.filtering.rules.flags import (
    CaptionInputIssueRule,
    NsfwRule,
    ParaphraseStatusRule,
)
from paraclip_pipeline.filtering.rules.language import (
    LanguageRule,
)
from paraclip_pipeline.filtering.rules.lexical import (
    CaptionLengthRule,
    CopyRule,
    LexicalChangeRule,
    ParaphraseLengthRule,
    PromptLeftoverRule,
)
from paraclip_pipeline.filtering.rules.meaning import (
    MeaningKeptRule,
)
from paraclip_pipeline.filtering.rules.round_trip import (
    RoundTripRule,
)
from paraclip_pipeline.filtering.rules.rules_file import (
    RULE_TYPES,
    PassRateConfig,
    RuleSet,
    SplitConfig,
    load_rules,
    parse_rules,
)

__all__ = [
    "PARAPHRASE_COLUMNS",
    "PARAPHRASE_SOURCES",
    "RULE_TYPES",
    "TEXT_COLUMNS",
    "CaptionInputIssueRule",
    "CaptionLengthRule",
    "CopyRule",
    "DedupRule",
    "FilterRulesError",
    "LanguageRule",
    "LexicalChangeRule",
    "MeaningKeptRule",
    "NsfwRule",
    "ParaphraseLengthRule",
    "ParaphraseStatusRule",
    "PassRateConfig",
    "PromptLeftoverRule",
    "RoundTripRule",
    "RowRule",
    "Rule",
    "RuleSet",
    "SetRule",
    "SplitConfig",
    "TextColumn",
    "load_rules",
    "parse_rules",
]
