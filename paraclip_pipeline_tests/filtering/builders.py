"""Builders for small stage-2 tables and rule sets written as YAML-like dicts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from paraclip_pipeline import schema
from paraclip_pipeline.filtering.rules import RuleSet, parse_rules

GOOD_ROW: dict[str, Any] = {
    schema.SHARD: "shard-a",
    schema.TEXT: "A brown dog running on a sandy beach",
    schema.PARAPHRASE_1: "A brown dog runs along the sandy shore",
    schema.STATUS_1: "ok",
    schema.PARAPHRASE_2: "Brown canine dashing along the seashore",
    schema.STATUS_2: "ok",
    schema.NSFW: "UNLIKELY",
    schema.INPUT_ISSUE: None,
}


def pairs_table(*rows: dict[str, Any]) -> pa.Table:
    """A stage-2 table (+ nsfw, input_issue); each row overrides GOOD_ROW, ids c000, c001..."""
    full = [
        {schema.CAPTION_ID: f"c{index:03d}", **GOOD_ROW, **row} for index, row in enumerate(rows)
    ]
    fields = [
        *schema.STAGE2_SCHEMA,
        pa.field(schema.NSFW, pa.string()),
        pa.field(schema.INPUT_ISSUE, pa.string()),
    ]
    return pa.Table.from_pylist(full, schema=pa.schema(fields))


def rule(name: str, **params: Any) -> dict[str, Any]:
    return {"name": name, "reason": f"test {name}", **params}


def rule_set(*rules: dict[str, Any], **sections: Any) -> RuleSet:
    return parse_rules({"rules": list(rules), **sections}, Path("test_rules.yaml"))
