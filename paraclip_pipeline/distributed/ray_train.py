"""Training on Ray Train: N ``TorchTrainer`` workers run the torchrun path's per-rank code.

Ray Train sets up the process group (gloo on CPU, NCCL with ``use_gpu``) and each worker
calls ``training.distributed.run_job_rank`` on the job file ``write_job`` wrote, so the
losses, data order, checkpoint format, manifest and exact resume are those of the local
path; only rank 0 writes the checkpoint, to ``output_dir`` on storage every node sees.
Measured here: 2 workers on the two-node local cluster give the torchrun (2-process DDP)
losses and weights within 1e-5 (``paraclip_pipeline_tests/training/test_ray_train.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paraclip_pipeline.distributed.ray_cluster import join_cluster
from paraclip_pipeline.training.distributed import read_job, run_job_rank


@dataclass(frozen=True)
class RayTrainSpec:
    """Where and how wide: the cluster address, workers, and each worker's resources."""

    address: str
    num_workers: int
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    # A worker that dies (node lost, OOM) restarts the group this many times; the loop
    # resumes from its last saved training state, so a retry repeats no finished step.
    max_failures: int = 1


def _train_worker(job_config: dict[str, Any]) -> None:
    """One Ray Train worker: the rank Ray assigned, in the process group Ray set up."""
    import ray.train
    import torch

    from paraclip_pipeline.training.loop import DistContext

    train_context = ray.train.get_context()
    local_rank = train_context.get_local_rank()
    use_cuda = job_config["use_gpu"]
    if use_cuda:
        torch.cuda.set_device(local_rank)
    context = DistContext(
        rank=train_context.get_world_rank(),
        world_size=train_context.get_world_size(),
        device=f"cuda:{local_rank}" if use_cuda else "cpu",
    )
    job_path = Path(job_config["job_path"])
    run_job_rank(read_job(job_path), job_path, context)


def train_on_ray(job_path: Path, spec: RayTrainSpec) -> None:
    """Run the job on ``spec.num_workers`` Ray Train workers; returns when rank 0 has written
    the checkpoint (read it back with ``TrainResult.from_checkpoint_dir``)."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    job_path = Path(job_path).resolve()
    read_job(job_path)  # a bad job file fails here, with its name, not in N workers
    use_gpu = spec.gpus_per_worker > 0
    resources = {"CPU": spec.cpus_per_worker, **({"GPU": spec.gpus_per_worker} if use_gpu else {})}
    join_cluster(spec.address)
    trainer = TorchTrainer(
        _train_worker,
        train_loop_config={"job_path": str(job_path), "use_gpu": use_gpu},
        scaling_config=ScalingConfig(
            num_workers=spec.num_workers,
            use_gpu=use_gpu,
            resources_per_worker=resources,
            # One worker per node where the cluster has room: the point is using more machines.
            placement_strategy="SPREAD",
        ),
        run_config=RunConfig(
            name=f"paraclip-{job_path.parent.name}",
            storage_path=str(job_path.parent / "ray_train"),
            failure_config=FailureConfig(max_failures=spec.max_failures),
        ),
    )
    trainer.fit()
