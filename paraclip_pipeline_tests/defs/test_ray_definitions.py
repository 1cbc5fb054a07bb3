"""With a Ray address the per-shard assets become one multi-asset: same graph, batched runs."""

import dataclasses

import dagster as dg

from paraclip_pipeline.definitions import build_defs
from paraclip_pipeline.defs.automation import PER_SHARD_ASSETS
from paraclip_pipeline_tests.defs.support import Pipeline


def test_ray_defs_keep_keys_code_versions_and_checks_and_batch_partitions(
    pipeline: Pipeline,
) -> None:
    local = build_defs(pipeline.settings).resolve_asset_graph()
    settings = dataclasses.replace(
        pipeline.settings, ray_address="127.0.0.1:6379", ray_partitions_per_run=8
    )
    on_ray = build_defs(settings).resolve_asset_graph()
    for key in PER_SHARD_ASSETS:
        assert on_ray.get(key).code_version == local.get(key).code_version, key
        assert on_ray.get(key).parent_keys == local.get(key).parent_keys, key
        assert on_ray.get(key).backfill_policy == dg.BackfillPolicy.multi_run(8)
    assert on_ray.asset_check_keys == local.asset_check_keys
    assert len({on_ray.get(key).assets_def for key in PER_SHARD_ASSETS}) == 1
