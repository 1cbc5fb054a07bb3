"""filtered_pairs: the (caption, T', T'') rows that pass the versioned filter rules.

The rules file's content hash is part of the asset's code version, so editing a rule
makes every shard's filtered_pairs (and only it, plus what follows) due again; the
paraphrase assets upstream are untouched and the LLM is never called.
"""

from pathlib import Path
from typing import TYPE_CHECKING

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
from paraclip_pipeline.distributed import ENGINE_IN_PROCESS
from paraclip_pipeline.filtering.rules import RuleSet, load_rules
from paraclip_pipeline.lineage.shard_status import stale_rules_partitions
from paraclip_pipeline.storage import ParquetTable

if TYPE_CHECKING:
    from paraclip_pipeline.filtering.stream import KeptQuality

FILTER_GROUP = "filtering"
FILTER_LOGIC_VERSION = "filter-v1"
PREVIEW_ROWS = 5

RULES_CURRENT_CHECK = "built_with_current_rules"


def filtered_pairs_code_version(rules: RuleSet) -> str:
    return f"{FILTER_LOGIC_VERSION}-rules-{rules.content_hash[:16]}"


# Why one failing shard must not fail its run: these checks gate TRAINING, not the run.
# Dagster's ``blocking=True`` fails the asset's step when a check fails (the run ends red,
# "blocking asset check failed") only to halt downstream assets of the same run, and
# shard_job has none: training runs separately and reads each partition's latest check
# result (``lineage.shard_status``), leaving a failing shard out. A failure is a warning
# carrying the reason, so a quarantined shard reads as handled, not as a crash.
QUARANTINE_NOTE = "shard quarantined: left out of training until a later output passes"


def _training_gate(name: str, description: str) -> dg.AssetCheckSpec:
    # Partitioned like the asset, so the UI shows each shard's result and training can ask
    # whether a shard's latest output passed.
    return dg.AssetCheckSpec(
        name,
        asset=FILTERED_PAIRS,
        blocking=False,
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
            _training_gate(SCHEMA_CHECK, "Columns and types are those training reads."),
            _training_gate(
                NO_NULL_TEXT_CHECK, "No kept row has a null or empty caption or paraphrase."
            ),
            _training_gate(UNIQUE_IDS_CHECK, "caption_id is unique within the partition."),
            _training_gate(
                PASS_RATE_CHECK, "Share of rows kept lies within the rules file's bounds."
            ),
        ],
        metadata={"rules_file": str(rules_path)},
    )
    def filtered_pairs(
        context: dg.AssetExecutionContext,
        raw_captions: ParquetTable,
        stage2_paraphrases: ParquetTable,
        sentence_encoder: SentenceEncoderResource,
        storage: StorageResource,
    ):
        """Pairs that pass the rules in the rules file; rejected rows go to a sibling Parquet.

        Streamed in ``storage.batch_rows`` batches (``filtering.stream``): dedup and the
        caption id check run in DuckDB over spill files under the storage root's scratch
        directory, so memory does not grow with the shard.
        """
        from paraclip_pipeline.filtering.stream import (
            kept_quality,
            paired_batches,
            stream_filter_rules,
        )

        layout, key, batch_rows = storage.layout, context.partition_key, storage.batch_rows
        kept_path = layout.partition_file(FILTERED_PAIRS, key)
        rejected_path = layout.partition_file(FILTERED_PAIRS_REJECTED, key)
        pairs = paired_batches(
            stage2_paraphrases.batches(batch_rows),
            raw_captions.batches(batch_rows, [schema.CAPTION_ID, schema.NSFW, schema.INPUT_ISSUE]),
        )
        layout.scratch_dir.mkdir(parents=True, exist_ok=True)
        with heartbeat(context.log.info, f"filtering shard {key}"):
            encoder = sentence_encoder.load() if rules.needs_encoder else None
            outcome = stream_filter_rules(
                pairs,
                rules,
                encoder,
                kept_target=kept_path,
                rejected_target=rejected_path,
                batch_rows=batch_rows,
                work_dir=layout.scratch_dir,
            )
        head = next(ParquetTable(str(kept_path)).batches(PREVIEW_ROWS), None)
        yield dg.Output(
            ParquetTable(str(kept_path)),
            data_version=dg.DataVersion(outcome.kept_fingerprint),
            metadata={
                "engine": ENGINE_IN_PROCESS,
                "rows_in": outcome.rows_in,
                "rows_kept": outcome.kept_rows,
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
                    pa.Table.from_batches([head])
                    if head is not None
                    else schema.FILTERED_PAIRS_SCHEMA.empty_table(),
                    [schema.TEXT, schema.PARAPHRASE_1, schema.PARAPHRASE_2, schema.SPLIT],
                ),
            },
        )
        yield from check_filtered_pairs(
            kept_quality(kept_path), outcome.pass_rate, rules.pass_rate_bounds
        )

    return filtered_pairs


def check_filtered_pairs(
    quality: "KeptQuality", pass_rate: float, bounds: tuple[float, float]
) -> list[dg.AssetCheckResult]:
    """The checks that gate training: a failure quarantines this output (a warning with
    the reason; the run itself succeeds)."""
    low, high = bounds
    return [
        _gate_result(
            SCHEMA_CHECK,
            not quality.mismatched_columns,
            {"mismatched_columns": ", ".join(quality.mismatched_columns) or "none"},
        ),
        _gate_result(
            NO_NULL_TEXT_CHECK,
            quality.empty_text_cells == 0,
            {"null_or_empty_cells": quality.empty_text_cells},
        ),
        _gate_result(
            UNIQUE_IDS_CHECK, quality.duplicate_ids == 0, {"duplicate_ids": quality.duplicate_ids}
        ),
        _gate_result(
            PASS_RATE_CHECK,
            low <= pass_rate <= high,
            {"pass_rate": float(pass_rate), "min": low, "max": high},
        ),
    ]


def _gate_result(name: str, passed: bool, metadata: dict[str, object]) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=name,
        passed=passed,
        metadata=metadata,
        severity=dg.AssetCheckSeverity.WARN,
        description=None if passed else QUARANTINE_NOTE,
    )


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
        stale = list(stale_rules_partitions(context.instance, code_version))
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
