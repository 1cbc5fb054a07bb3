"""Automation requests work only when an input's data version changed, and a missing
(quarantined) shard does not block the others."""

from __future__ import annotations

import dagster as dg
from dagster._core.definitions.data_version import DATA_VERSION_TAG

from paraclip_pipeline.asset_names import (
    BENCHMARK_REPORT,
    FILTERED_PAIRS,
    IMAGE_EMBEDDINGS,
    RAW_CAPTIONS,
    STAGE1_PARAPHRASES,
    STAGE2_PARAPHRASES,
    TEXT_ENCODER_CHECKPOINT,
)
from paraclip_pipeline.defs.partitions import caption_shards
from paraclip_pipeline_tests.defs.support import Pipeline

PER_SHARD = (RAW_CAPTIONS, STAGE1_PARAPHRASES, STAGE2_PARAPHRASES, FILTERED_PAIRS, IMAGE_EMBEDDINGS)


def _materialize(instance, asset: str, version: str, partition: str | None = None) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset, partition=partition, tags={DATA_VERSION_TAG: version})
    )


class Ticker:
    def __init__(self, pipeline: Pipeline) -> None:
        self.defs = pipeline.defs
        self.instance = pipeline.instance
        self.cursor = None

    def requested(self) -> set[str]:
        result = dg.evaluate_automation_conditions(
            defs=self.defs, instance=self.instance, cursor=self.cursor
        )
        self.cursor = result.cursor
        self.partitions = {
            key.to_user_string(): partitions
            for key, partitions in result._requested_partitions_by_asset_key.items()
        }
        return set(self.partitions)


def test_report_follows_the_checkpoint_data_version_only(pipeline: Pipeline) -> None:
    """The checkpoint itself is requested by the retraining policy sensor
    (test_retraining.py), never by a condition; the report follows its weights."""
    instance = pipeline.instance
    instance.add_dynamic_partitions(caption_shards.name, ["shard-q"])  # never ingested
    ticker = Ticker(pipeline)
    ticker.requested()
    for shard in ("shard-a", "shard-b"):
        for asset in PER_SHARD:
            _materialize(instance, asset, f"{asset}-{shard}-1", shard)
    assert TEXT_ENCODER_CHECKPOINT not in ticker.requested()
    _materialize(instance, TEXT_ENCODER_CHECKPOINT, "weights-1")
    assert ticker.requested() == {BENCHMARK_REPORT}
    _materialize(instance, BENCHMARK_REPORT, "report-1")
    assert ticker.requested() == set()

    # Changed pairs request no checkpoint (the policy's call); the same weights no report.
    _materialize(instance, FILTERED_PAIRS, f"{FILTERED_PAIRS}-shard-a-2", "shard-a")
    assert ticker.requested() == set()
    _materialize(instance, TEXT_ENCODER_CHECKPOINT, "weights-1")  # same weights
    assert ticker.requested() == set()
    _materialize(instance, TEXT_ENCODER_CHECKPOINT, "weights-2")
    assert ticker.requested() == {BENCHMARK_REPORT}


def test_refilter_after_a_rules_edit_skips_shards_without_inputs(pipeline: Pipeline) -> None:
    instance = pipeline.instance
    instance.add_dynamic_partitions(caption_shards.name, ["shard-q"])
    for asset in PER_SHARD:
        _materialize(instance, asset, f"{asset}-a", "shard-a")
    _materialize(instance, STAGE1_PARAPHRASES, "stale", "shard-q")  # raw_captions gone
    ticker = Ticker(pipeline)
    ticker.requested()
    pipeline.relax_pass_rate()
    ticker.defs = pipeline.defs  # a code-location reload with the new rules
    ticker.requested()
    assert ticker.partitions[FILTERED_PAIRS] == {"shard-a"}
