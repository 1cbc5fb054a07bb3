"""Ray Train: 2 TorchTrainer workers on the two-node cluster equal local 2-process DDP."""

import os
import subprocess

import pytest
import torch
from safetensors.torch import load_file

from paraclip_pipeline.distributed.ray_train import RayTrainSpec, train_on_ray
from paraclip_pipeline.modeling.checkpoint_format import WEIGHTS_FILE
from paraclip_pipeline.modeling.profiles import get_profile
from paraclip_pipeline.training.distributed import build_torchrun_command, write_job
from paraclip_pipeline.training.loop import TrainResult
from paraclip_pipeline.training.prepare import prepare_training_data
from paraclip_pipeline.training.prepared import prepared_dir_for
from paraclip_pipeline_tests.distributed.ray_support import ray_address

__all__ = ["ray_address"]
PROFILE = get_profile("tiny-random")
pytestmark = pytest.mark.ray


def test_ray_train_two_workers_equal_torchrun_ddp(
    ray_address, tiny_data, tiny_config, tmp_path
) -> None:
    pairs, embeddings = tiny_data
    config = tiny_config.model_copy(update={"nproc": 2})
    inputs = [{"partition": "s0"}]

    def job(name: str):
        return write_job(
            prepare_training_data(pairs, embeddings, prepared_dir_for(tmp_path / name)),
            profile=PROFILE,
            config=config,
            output_dir=tmp_path / name,
            inputs=inputs,
        )

    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    completed = subprocess.run(
        build_torchrun_command(job("ddp"), 2), env=env, capture_output=True, text=True, timeout=240
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    train_on_ray(job("ray"), RayTrainSpec(address=ray_address, num_workers=2))

    local = TrainResult.from_checkpoint_dir(tmp_path / "ddp")
    on_ray = TrainResult.from_checkpoint_dir(tmp_path / "ray")
    assert on_ray.metrics["world_size"] == 2.0
    assert on_ray.manifest["run_fingerprint"] == local.manifest["run_fingerprint"]
    assert on_ray.manifest["inputs"] == inputs
    assert on_ray.trained_caption_ids == local.trained_caption_ids
    for got, want in zip(on_ray.loss_history, local.loss_history, strict=True):
        assert got["step"] == want["step"]
        assert abs(got["total"] - want["total"]) < 1e-5
    expected = load_file(local.checkpoint_dir / WEIGHTS_FILE)
    actual = load_file(on_ray.checkpoint_dir / WEIGHTS_FILE)
    assert actual.keys() == expected.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(actual[name], tensor, rtol=0, atol=1e-5)
