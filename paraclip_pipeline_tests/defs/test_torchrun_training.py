"""The checkpoint asset's multi-process path: torchrun (2 CPU processes, gloo) via Dagster Pipes."""

import json
from pathlib import Path

import dagster as dg
import pytest

from paraclip_pipeline.defs.resources import TrainingResource
from paraclip_pipeline_tests.defs.support import Pipeline

from .test_pipeline_e2e import latest_metadata

pytestmark = pytest.mark.slow


def test_checkpoint_trains_with_torchrun_through_pipes(pipeline: Pipeline) -> None:
    pipeline.relax_pass_rate()
    pipeline.run_all_shards()
    defs = pipeline.defs_with(
        training=TrainingResource(config_path=str(pipeline.settings.train_config_path), nproc=2)
    )
    job = defs.resolve_job_def("training_job").get_subset(
        asset_selection={dg.AssetKey("text_encoder_checkpoint")}
    )
    result = job.execute_in_process(instance=pipeline.instance)
    assert result.success

    metadata = latest_metadata(pipeline.instance, "text_encoder_checkpoint")
    checkpoint_dir = Path(metadata["checkpoint_dir"])
    manifest = json.loads((checkpoint_dir / "manifest.json").read_text())
    assert manifest["config"]["nproc"] == 2
    assert {item["partition"] for item in manifest["inputs"]} == set(pipeline.shard_keys)
    # Rank 0's log lines reached Dagster's event log through Pipes.
    logs = [
        event.message
        for event in pipeline.instance.all_logs(result.run_id)
        if event.message and "checkpoint written to" in event.message
    ]
    assert logs
