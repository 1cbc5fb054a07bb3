"""The per-shard steps on Ray: a multi-partition run writes the in-process files and versions."""

import dataclasses
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.data_version import CODE_VERSION_TAG, DATA_VERSION_TAG
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from paraclip_pipeline.asset_names import FILTERED_PAIRS_REJECTED
from paraclip_pipeline.definitions import build_defs
from paraclip_pipeline.defs.automation import PER_SHARD_ASSETS
from paraclip_pipeline.defs.partitions import caption_shards
from paraclip_pipeline.storage import StorageLayout
from paraclip_pipeline_tests.defs.support import Pipeline
from paraclip_pipeline_tests.distributed.ray_support import ray_address

__all__ = ["ray_address"]
pytestmark = pytest.mark.ray

INPUT_TAG_PREFIX = "dagster/input_data_version/"


def _version_tags(instance: dg.DagsterInstance, key: dg.AssetKey, shard: str) -> dict[str, str]:
    """Data, code and input data versions of a partition's latest materialization (the event
    pointers are storage ids, which differ between two instances)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(key, asset_partitions=[shard]), limit=1
    ).records
    assert records, f"{key.to_user_string()}[{shard}] was not materialized"
    tags = records[0].asset_materialization.tags or {}
    wanted = (DATA_VERSION_TAG, CODE_VERSION_TAG)
    return {k: v for k, v in tags.items() if k in wanted or k.startswith(INPUT_TAG_PREFIX)}


def run_range_on_ray(pipeline: Pipeline, address: str, root: Path, instance: dg.DagsterInstance):
    """Every shard in ONE Dagster run (a backfill's batch) on Ray."""
    settings = dataclasses.replace(pipeline.settings, storage_root=root, ray_address=address)
    instance.add_dynamic_partitions(caption_shards.name, pipeline.shard_keys)
    job = build_defs(settings).resolve_job_def("shard_job")
    tags = {
        ASSET_PARTITION_RANGE_START_TAG: pipeline.shard_keys[0],
        ASSET_PARTITION_RANGE_END_TAG: pipeline.shard_keys[-1],
    }
    return job.execute_in_process(instance=instance, tags=tags)


def test_multi_partition_run_on_ray_equals_in_process(
    pipeline: Pipeline, ray_address: str, tmp_path: Path
) -> None:
    pipeline.relax_pass_rate()
    pipeline.run_all_shards()
    (tmp_path / "ray_home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "ray_home")) as ray_instance:
        result = run_range_on_ray(pipeline, ray_address, tmp_path / "ray_storage", ray_instance)
        assert result.success
        assert len(ray_instance.get_run_records()) == 1
        in_process = StorageLayout(pipeline.settings.storage_root)
        on_ray = StorageLayout(tmp_path / "ray_storage")
        for key in [*PER_SHARD_ASSETS, dg.AssetKey(FILTERED_PAIRS_REJECTED)]:
            for shard in pipeline.shard_keys:
                name = key.path[-1]
                expected = in_process.partition_file(name, shard).read_bytes()
                assert on_ray.partition_file(name, shard).read_bytes() == expected, (name, shard)
        for key in PER_SHARD_ASSETS:
            for shard in pipeline.shard_keys:
                ray_tags = _version_tags(ray_instance, key, shard)
                assert ray_tags == _version_tags(pipeline.instance, key, shard), (key, shard)
                assert len(ray_tags) >= 2
            record = ray_instance.fetch_materializations(key, limit=1).records[0]
            assert record.asset_materialization.metadata["engine"].value == "ray"
