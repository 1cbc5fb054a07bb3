"""The checkpoint asset with Ray configured: 2 Ray Train workers, the engine in the metadata."""

import json
from pathlib import Path

import dagster as dg
import pytest

from paraclip_pipeline.defs.resources import RayResource, TrainingResource
from paraclip_pipeline_tests.defs.support import Pipeline
from paraclip_pipeline_tests.distributed.ray_support import ray_address

from .test_pipeline_e2e import latest_metadata

__all__ = ["ray_address"]
pytestmark = [pytest.mark.slow, pytest.mark.ray]


def test_checkpoint_trains_on_ray_train_and_says_so(pipeline: Pipeline, ray_address: str) -> None:
    pipeline.relax_pass_rate()
    pipeline.run_all_shards()
    assert latest_metadata(pipeline.instance, "filtered_pairs")["engine"] == "in-process"
    defs = pipeline.defs_with(
        training=TrainingResource(config_path=str(pipeline.settings.train_config_path), nproc=2),
        ray=RayResource(address=ray_address),
    )
    job = defs.resolve_job_def("training_job").get_subset(
        asset_selection={dg.AssetKey("text_encoder_checkpoint")}
    )
    assert job.execute_in_process(instance=pipeline.instance).success

    metadata = latest_metadata(pipeline.instance, "text_encoder_checkpoint")
    assert metadata["engine"] == "ray" and metadata["world_size"] == 2.0
    manifest = json.loads((Path(metadata["checkpoint_dir"]) / "manifest.json").read_text())
    assert {item["partition"] for item in manifest["inputs"]} == set(pipeline.shard_keys)
