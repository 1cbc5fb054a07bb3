"""Shard status: which partitions may train, from the event log alone."""

from __future__ import annotations

import dagster as dg
import pytest
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)
from dagster._core.definitions.data_version import CODE_VERSION_TAG, DATA_VERSION_TAG

from paraclip_pipeline.asset_names import FILTERED_PAIRS, PASS_RATE_CHECK, RAW_CAPTIONS
from paraclip_pipeline.lineage.shard_status import (
    CHECKS_FAILED,
    NOT_BUILT,
    OK,
    QUARANTINE_REASON_KEY,
    QUARANTINED,
    STALE_RULES,
    shard_statuses,
)


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


def _materialize(instance: dg.DagsterInstance, asset: str, key: str, code: str = "rules-1"):
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset, partition=key, tags={DATA_VERSION_TAG: f"{asset}-{key}", CODE_VERSION_TAG: code}
        )
    )


def _check(instance: dg.DagsterInstance, key: str, passed: bool) -> None:
    event = instance.get_latest_materialization_event(dg.AssetKey(FILTERED_PAIRS))
    assert event is not None
    instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey(FILTERED_PAIRS),
            check_name=PASS_RATE_CHECK,
            passed=passed,
            partition=key,
            target_materialization_data=AssetCheckEvaluationTargetMaterializationData(
                storage_id=instance.fetch_materializations(
                    dg.AssetRecordsFilter(
                        asset_key=dg.AssetKey(FILTERED_PAIRS), asset_partitions=[key]
                    ),
                    limit=1,
                )
                .records[0]
                .storage_id,
                run_id=event.run_id,
                timestamp=event.timestamp,
            ),
        )
    )


def test_each_reason_to_leave_a_shard_out(instance) -> None:
    for key in ("good", "failed", "stale", "broken"):
        _materialize(instance, RAW_CAPTIONS, key)
        _materialize(instance, FILTERED_PAIRS, key, "rules-old" if key == "stale" else "rules-1")
        _check(instance, key, passed=key != "failed")
    # The broken shard's file went bad after it had trained: the quarantine is newer.
    instance.report_runless_asset_event(
        dg.AssetObservation(
            RAW_CAPTIONS, partition="broken", metadata={QUARANTINE_REASON_KEY: "no rows"}
        )
    )
    keys = ["good", "failed", "stale", "broken", "new"]
    statuses = shard_statuses(instance, keys, "rules-1")
    assert {key: status.status for key, status in statuses.items()} == {
        "good": OK,
        "failed": CHECKS_FAILED,
        "stale": STALE_RULES,
        "broken": QUARANTINED,
        "new": NOT_BUILT,
    }
    assert statuses["failed"].reason == f"failed {PASS_RATE_CHECK}"
    assert statuses["broken"].reason == "no rows"
    assert [key for key, status in statuses.items() if status.trainable] == ["good"]
    # A newer output whose checks have not run yet no longer counts as failed (the checks
    # are judged on the latest output only); a fresh ingestion lifts the quarantine.
    _materialize(instance, FILTERED_PAIRS, "failed")
    _materialize(instance, RAW_CAPTIONS, "broken")
    statuses = shard_statuses(instance, keys, "rules-1")
    assert statuses["failed"].status == OK and statuses["broken"].status == OK
