"""Ingest on Ray Data: a batch of shards as one Ray job writes the in-process outputs."""

from pathlib import Path

import dagster as dg
import pytest

from paraclip_pipeline.asset_names import RAW_CAPTIONS
from paraclip_pipeline.distributed.ray_shards import run_step_on_ray
from paraclip_pipeline.storage import StorageLayout
from paraclip_pipeline_tests.defs.support import Pipeline
from paraclip_pipeline_tests.distributed.ray_support import ray_address

__all__ = ["ray_address"]
pytestmark = pytest.mark.ray


def test_ingest_batch_on_ray_equals_in_process(pipeline: Pipeline, ray_address, tmp_path) -> None:
    job = pipeline.defs.resolve_job_def("shard_job").get_subset(
        asset_selection={dg.AssetKey(RAW_CAPTIONS)}
    )
    for key in pipeline.shard_keys:
        assert job.execute_in_process(partition_key=key, instance=pipeline.instance).success
    in_process = StorageLayout(pipeline.settings.storage_root)

    options = {
        "location": pipeline.settings.shards_location,
        "image_root": None,
        "max_caption_chars": 2000,
        "storage_root": str(tmp_path / "ray_storage"),
    }
    records = run_step_on_ray(RAW_CAPTIONS, pipeline.shard_keys, options, address=ray_address)

    assert [record["shard"] for record in records] == pipeline.shard_keys
    for record in records:
        key = record["shard"]
        expected = in_process.partition_file(RAW_CAPTIONS, key).read_bytes()
        assert Path(record["path"]).read_bytes() == expected, key
        materialization = (
            pipeline.instance.fetch_materializations(
                dg.AssetRecordsFilter(dg.AssetKey(RAW_CAPTIONS), asset_partitions=[key]), limit=1
            )
            .records[0]
            .asset_materialization
        )
        assert materialization is not None
        assert record["data_version"] == materialization.tags["dagster/data_version"]
        assert record["rows"] == materialization.metadata["rows"].value
