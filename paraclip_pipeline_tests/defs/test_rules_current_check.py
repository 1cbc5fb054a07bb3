"""built_with_current_rules raises no alarm for retired or quarantined shards."""

from __future__ import annotations

import dagster as dg
from dagster._core.definitions.data_version import CODE_VERSION_TAG, DATA_VERSION_TAG

from paraclip_pipeline.asset_names import FILTERED_PAIRS, RAW_CAPTIONS
from paraclip_pipeline.defs.filtering import build_rules_current_check
from paraclip_pipeline.defs.partitions import caption_shards
from paraclip_pipeline.lineage.shard_status import QUARANTINE_REASON_KEY


def test_only_registered_usable_shards_can_be_stale() -> None:
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(caption_shards.name, ["alpha", "gamma", "delta"])
        for key, code in (("alpha", "v1"), ("beta", "v1"), ("gamma", "v1"), ("delta", "v2")):
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    FILTERED_PAIRS,
                    partition=key,
                    tags={DATA_VERSION_TAG: key, CODE_VERSION_TAG: code},
                )
            )
        instance.report_runless_asset_event(
            dg.AssetObservation(
                RAW_CAPTIONS, partition="gamma", metadata={QUARANTINE_REASON_KEY: "x"}
            )
        )
        check = build_rules_current_check("v2")
        result = check(dg.build_asset_check_context(instance=instance))
    # beta was retired (no partition), gamma is quarantined: only alpha is an alarm.
    assert not result.passed
    assert result.metadata["stale_examples"].value == "alpha"
