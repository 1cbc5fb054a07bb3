"""On Ray, an unreadable shard in a batch is quarantined like in-process: the batch's other
shards materialize and the run succeeds; a shard failing a check is left out of training
as in-process (its own partitioned check result). A local in-process Ray (``ray.init("local")``),
so no cluster is needed; with PARACLIP_TEST_RAY_ADDRESS set, that cluster is used."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator

import dagster as dg
import pytest
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from paraclip_pipeline.asset_names import (
    FILTERED_PAIRS,
    IMAGE_EMBEDDINGS,
    PASS_RATE_CHECK,
    RAW_CAPTIONS,
)
from paraclip_pipeline.definitions import build_defs
from paraclip_pipeline.defs.partitions import caption_shards
from paraclip_pipeline.lineage.event_log import latest_partition_versions
from paraclip_pipeline.lineage.shard_status import (
    CHECKS_FAILED,
    OK,
    QUARANTINE_RUN_TAG,
    quarantine_observations,
    shard_statuses,
)
from paraclip_pipeline_tests.defs.support import Pipeline
from paraclip_pipeline_tests.distributed.ray_support import TEST_RAY_ADDRESS_ENV

pytestmark = pytest.mark.slow
BROKEN = "shard-c"


@pytest.fixture
def ray_here(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    ray = pytest.importorskip("ray", reason="the optional `ray` extra is not installed")
    # A local ray.init() otherwise turns token auth on and writes ~/.ray/auth_token, which
    # breaks a later `ray start` of a second node on this machine (.ci/ray-cluster).
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    address = os.environ.get(TEST_RAY_ADDRESS_ENV) or "local"
    yield address
    ray.shutdown()  # the local cluster this test started, or the connection to the shared one


def test_unreadable_shard_in_a_ray_batch_is_quarantined(pipeline: Pipeline, ray_here: str) -> None:
    # shard-a has two captions the rules reject: it fails this pass-rate bound.
    pipeline.edit_rules(lambda rules: rules.update(pass_rate={"min": 0.95, "max": 1.0}))
    shards_dir = pipeline.settings.shards_location
    with open(os.path.join(shards_dir, f"{BROKEN}.parquet"), "wb") as handle:
        handle.write(b"PAR1 not really parquet PAR1")
    pipeline.instance.add_dynamic_partitions(caption_shards.name, [BROKEN])
    settings = dataclasses.replace(pipeline.settings, ray_address=ray_here)
    job = build_defs(settings).resolve_job_def("shard_job")
    result = job.execute_in_process(
        instance=pipeline.instance,
        tags={ASSET_PARTITION_RANGE_START_TAG: "shard-a", ASSET_PARTITION_RANGE_END_TAG: BROKEN},
        raise_on_error=False,
    )
    assert result.success
    for asset in (RAW_CAPTIONS, FILTERED_PAIRS, IMAGE_EMBEDDINGS):
        built = latest_partition_versions(pipeline.instance, dg.AssetKey(asset))
        assert set(built) == {"shard-a", "shard-b"}, asset
    [(_, reason)] = quarantine_observations(pipeline.instance, [BROKEN]).values()
    assert f"{BROKEN}.parquet: not a readable Parquet file" in reason
    run = pipeline.instance.get_run_by_id(result.run_id)
    assert run is not None and run.tags[QUARANTINE_RUN_TAG].startswith(f"{BROKEN}: ")

    # The batch's pass-rate result names the failing shards; eligibility agrees per shard.
    [batch] = [
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == PASS_RATE_CHECK and e.partition is None
    ]
    failing = set(batch.metadata["failing_shards"].value.split(", ")) - {"none"}
    assert "shard-a" in failing
    code_version = job.asset_layer.asset_graph.get(dg.AssetKey(FILTERED_PAIRS)).code_version
    statuses = shard_statuses(pipeline.instance, ["shard-a", "shard-b"], code_version)
    assert {k for k, s in statuses.items() if s.status == CHECKS_FAILED} == failing
    assert {k for k, s in statuses.items() if s.status == OK} == {"shard-a", "shard-b"} - failing
