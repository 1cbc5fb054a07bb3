"""A shard failing a training-gate check is quarantined, and its run does not fail."""

from __future__ import annotations

import dagster as dg

from paraclip_pipeline.asset_names import (
    FILTERED_PAIRS,
    PASS_RATE_CHECK,
    RAW_CAPTIONS,
    STAGE1_PARAPHRASES,
    STAGE2_PARAPHRASES,
)
from paraclip_pipeline.defs.filtering import QUARANTINE_NOTE
from paraclip_pipeline.lineage.shard_status import CHECKS_FAILED, OK, shard_statuses
from paraclip_pipeline_tests.defs.support import Pipeline

FILTER_CHAIN = [
    dg.AssetKey(name)
    for name in (RAW_CAPTIONS, STAGE1_PARAPHRASES, STAGE2_PARAPHRASES, FILTERED_PAIRS)
]


def _filter(pipeline: Pipeline, shard: str) -> dg.ExecuteInProcessResult:
    job = pipeline.defs.resolve_job_def("shard_job")
    return job.execute_in_process(
        partition_key=shard,
        instance=pipeline.instance,
        asset_selection=FILTER_CHAIN,
        raise_on_error=False,
    )


def test_failing_pass_rate_quarantines_the_shard_and_the_run_succeeds(pipeline: Pipeline) -> None:
    # shard-a has two captions the rules reject (a file name and a blank): < 100 % kept.
    pipeline.edit_rules(lambda rules: rules.update(pass_rate={"min": 0.99, "max": 1.0}))
    result = _filter(pipeline, "shard-a")
    assert result.success  # not red: the shard is quarantined, nothing crashed
    [evaluation] = [
        e for e in result.get_asset_check_evaluations() if e.check_name == PASS_RATE_CHECK
    ]
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.description == QUARANTINE_NOTE
    code_version = pipeline.defs.resolve_assets_def(FILTERED_PAIRS).code_versions_by_key[
        dg.AssetKey(FILTERED_PAIRS)
    ]
    status = shard_statuses(pipeline.instance, ["shard-a"], code_version)["shard-a"]
    assert status.status == CHECKS_FAILED and PASS_RATE_CHECK in status.reason
    assert not status.trainable

    # Relaxed bounds: a later output passes and lifts the quarantine.
    pipeline.relax_pass_rate()
    assert _filter(pipeline, "shard-a").success
    code_version = pipeline.defs.resolve_assets_def(FILTERED_PAIRS).code_versions_by_key[
        dg.AssetKey(FILTERED_PAIRS)
    ]
    assert shard_statuses(pipeline.instance, ["shard-a"], code_version)["shard-a"].status == OK
