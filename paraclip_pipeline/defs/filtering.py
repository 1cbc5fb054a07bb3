"""filtered_pairs: the (caption, T', T'') rows that pass the versioned filter rules.

The rules file's content hash is part of the asset's code version, so editing a rule
makes every shard's filtered_pairs (and only it, plus what follows) due again; the
paraphrase assets upstream are untouched and the LLM is never called.
"""

from pathlib import Path

import dagster as dg
import pyarrow as pa

from paraclip_pipeline import schema
from paraclip_pipeline.asset_names import (
    FILTERED_PAIRS,
    FILTERED_PAIRS_REJECTED,
    NO_NULL_TEXT_CHECK,
    PASS_RATE_CHECK,
    SCHEMA_CHECK,
    UNIQUE_IDS_CHECK,
)
from paraclip_pipeline.defs import conditions
from paraclip_pipeline.defs.metadata import records_table, table_preview
from paraclip_pipeline.defs.partitions import caption_shards
from paraclip_pipeline.defs.progress import heartbeat
from paraclip_pipeline.defs.resources import SentenceEncoderResource, StorageResource
from paraclip_pipeline.filtering.apply import apply_filter_rules
from paraclip_pipeline.filtering.rules import RuleSet, load_rules
from paraclip_pipeline.lineage.event_log import stale_code_version_partitions
from paraclip_pipeline.lineage.shard_status import quarantine_observations
from paraclip_pipeline.storage import table_fingerprint, write_parquet_atomic

FILTER_GROUP = "filtering"
FILTER_LOGIC_VERSION = "filter-v1"

RULES_CURRENT_CHECK = "built_with_current_rules"


def filtered_pairs_code_version(rules: RuleSet) -> str:
    return f"{FILTER_LOGIC_VERSION}-rules-{rules.content_hash[:16]}"


def _blocking(name: str, description: str) -> dg.AssetCheckSpec:
    # Partitioned like the asset, so the UI shows each shard's result and training can ask
    # whether a shard's latest output passed.
    return dg.AssetCheckSpec(
        name,
        asset=FILTERED_PAIRS,
        blocking=True,
        description=description,
        partitions_def=caption_shards,
    )


def build_filtered_pairs(rules_path: Path) -> dg.AssetsDefinition:
    """The filtered_pairs asset for one rules file (its hash is in the code version)."""
    rules = load_rules(rules_path)

    @dg.asset(
        name=FILTERED_PAIRS,
        partitions_def=caption_shards,
        group_name=FILTER_GROUP,
        code_version=filtered_pairs_code_version(rules),
        kinds={"parquet"},
        automation_condition=conditions.filtered_pairs_condition(),
        check_specs=[
            _blocking(SCHEMA_CHECK, "Columns and types are those training reads."),
            _blocking(NO_NULL_TEXT_CHECK, "No kept row has a null or empty caption or paraphrase."),
            _blocking(UNIQUE_IDS_CHECK, "caption_id is unique within the partition."),
            _blocking(PASS_RATE_CHECK, "Share of rows kept lies within the rules file's bounds."),
        ],
        metadata={"rules_file": str(rules_path)},
    )
    def filtered_pairs(
        context: dg.AssetExecutionContext,
        raw_captions: pa.Table,
        stage2_paraphrases: pa.Table,
        sentence_encoder: SentenceEncoderResource,
        storage: StorageResource,
    ):
        """Pairs that pass the rules in the rules file; rejected rows go to a sibling Parquet."""
        extra = raw_captions.select([schema.CAPTION_ID, schema.NSFW, schema.INPUT_ISSUE])
        pairs = stage2_paraphrases.join(extra, schema.CAPTION_ID, join_type="left outer")
        pairs = pairs.sort_by(schema.CAPTION_ID)
        with heartbeat(context.log.info, f"filtering shard {context.partition_key}"):
            encoder = sentence_encoder.load() if rules.needs_encoder else None
            outcome = apply_filter_rules(pairs, rules, encoder)

        rejected_path = storage.layout.partition_file(
            FILTERED_PAIRS_REJECTED, context.partition_key
        )
        write_parquet_atomic(outcome.rejected, rejected_path)

        kept = outcome.kept
        yield dg.Output(
            kept,
            data_version=dg.DataVersion(table_fingerprint(kept)),
            metadata={
                "rows_in": len(pairs),
                "rows_kept": len(kept),
                "pass_rate": float(outcome.pass_rate),
                "rules_hash": rules.content_hash,
                "rejected_rows_path": dg.MetadataValue.path(str(rejected_path)),
                "drops_by_rule": records_table(
                    [
                        {
                            "rule": name,
                            "dropped": count,
                            "examples": " | ".join(outcome.examples.get(name, [])[:3]),
                        }
                        for name, count in outcome.drop_counts.items()
                    ],
                    ["rule", "dropped", "examples"],
                ),
                "preview": table_preview(
                    kept, [schema.TEXT, schema.PARAPHRASE_1, schema.PARAPHRASE_2, schema.SPLIT]
                ),
            },
        )
        yield from check_filtered_pairs(kept, outcome.pass_rate, rules.pass_rate_bounds)

    return filtered_pairs


def check_filtered_pairs(
    kept: pa.Table, pass_rate: float, bounds: tuple[float, float]
) -> list[dg.AssetCheckResult]:
    """The blocking checks: a failure stops training on this run's output."""
    import pyarrow.compute as pc

    missing = [
        field.name
        for field in schema.FILTERED_PAIRS_SCHEMA
        if field.name not in kept.schema.names
        or not kept.schema.field(field.name).type.equals(field.type)
    ]
    text_columns = [schema.TEXT, schema.PARAPHRASE_1, schema.PARAPHRASE_2]
    empty_text = sum(
        pc.sum(pc.or_kleene(pc.is_null(kept[c]), pc.equal(pc.utf8_length(kept[c]), 0))).as_py() or 0
        for c in text_columns
        if c in kept.schema.names
    )
    duplicate_ids = (
        len(kept) - pc.count_distinct(kept[schema.CAPTION_ID]).as_py()
        if schema.CAPTION_ID in kept.schema.names
        else len(kept)
    )
    low, high = bounds
    return [
        dg.AssetCheckResult(
            check_name=SCHEMA_CHECK,
            passed=not missing,
            metadata={"mismatched_columns": ", ".join(missing) or "none"},
        ),
        dg.AssetCheckResult(
            check_name=NO_NULL_TEXT_CHECK,
            passed=empty_text == 0,
            metadata={"null_or_empty_cells": int(empty_text)},
        ),
        dg.AssetCheckResult(
            check_name=UNIQUE_IDS_CHECK,
            passed=duplicate_ids == 0,
            metadata={"duplicate_ids": int(duplicate_ids)},
        ),
        dg.AssetCheckResult(
            check_name=PASS_RATE_CHECK,
            passed=low <= pass_rate <= high,
            metadata={"pass_rate": float(pass_rate), "min": low, "max": high},
        ),
    ]


def build_rules_current_check(code_version: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=FILTERED_PAIRS,
        name=RULES_CURRENT_CHECK,
        description=(
            "Lists shards whose filtered_pairs were built with older filter rules. Dagster's "
            "asset-level 'unsynced' badge ignores partitioned staleness (dagster#22553); this "
            "check shows it per partition."
        ),
    )
    def filtered_pairs_built_with_current_rules(
        context: dg.AssetCheckExecutionContext,
    ) -> dg.AssetCheckResult:
        # Only registered shards that can be refiltered: a retired partition (file gone) or
        # a quarantined one (no usable input) is no stale alarm anyone can act on.
        registered = set(context.instance.get_dynamic_partitions(caption_shards.name))
        quarantined = quarantine_observations(context.instance)
        stale = [
            key
            for key in stale_code_version_partitions(
                context.instance, dg.AssetKey(FILTERED_PAIRS), code_version
            )
            if key in registered and key not in quarantined
        ]
        return dg.AssetCheckResult(
            passed=not stale,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "current_code_version": code_version,
                "stale_partitions": len(stale),
                "stale_examples": ", ".join(sorted(stale)[:20]) or "none",
            },
        )

    return filtered_pairs_built_with_current_rules
