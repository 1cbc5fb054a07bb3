"""A rules reload marks each stale filtered_pairs partition before anything reruns."""

from __future__ import annotations

import dagster as dg
from dagster._core.definitions.data_version import CODE_VERSION_TAG, DATA_VERSION_TAG

from paraclip_pipeline.asset_names import FILTERED_PAIRS, RAW_CAPTIONS
from paraclip_pipeline.defs.partitions import caption_shards
from paraclip_pipeline.defs.staleness import RULES_STATUS_KEY, STALE, build_rules_staleness_sensor
from paraclip_pipeline.lineage.shard_status import QUARANTINE_REASON_KEY


def _filtered(instance: dg.DagsterInstance, shard: str, code_version: str) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            FILTERED_PAIRS,
            partition=shard,
            tags={DATA_VERSION_TAG: shard, CODE_VERSION_TAG: code_version},
        )
    )


def test_each_stale_partition_gets_an_observation_once_per_rules_version() -> None:
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(caption_shards.name, ["alpha", "beta", "gamma", "delta"])
        for shard in ("alpha", "beta", "gamma", "retired"):
            _filtered(instance, shard, "rules-1")
        _filtered(instance, "delta", "rules-2")
        instance.report_runless_asset_event(
            dg.AssetObservation(
                RAW_CAPTIONS, partition="gamma", metadata={QUARANTINE_REASON_KEY: "x"}
            )
        )
        sensor = build_rules_staleness_sensor("rules-2")
        result = sensor(dg.build_sensor_context(instance=instance, cursor="rules-1"))
        assert isinstance(result, dg.SensorResult)
        marked = {event.partition: event.metadata for event in result.asset_events}
        # delta is current, gamma quarantined, "retired" no longer a partition.
        assert set(marked) == {"alpha", "beta"}
        assert marked["alpha"][RULES_STATUS_KEY].value == STALE
        assert marked["alpha"]["built_with"].value == "rules-1"
        assert marked["alpha"]["current_rules"].value == "rules-2"
        assert result.cursor == "rules-2"
        # The next tick with the same rules marks nothing again.
        again = sensor(dg.build_sensor_context(instance=instance, cursor=result.cursor))
        assert isinstance(again, dg.SkipReason)
