"""Multi-process training: ``torchrun -m paraclip_pipeline.training.distributed --job J``.

Every rank builds the same model and trains with DistributedDataParallel (gloo on CPU,
nccl on GPU) and the all-gathered contrastive loss; rank 0 alone writes the checkpoint
and reports. Reports go through Dagster Pipes when Dagster launched the process (the
lead's ``PipesSubprocessClient``), and to stdout when it runs standalone.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from dagster_pipes import PipesEnvVarParamsLoader, open_dagster_pipes

from paraclip_pipeline.modeling.profiles import ModelProfile
from paraclip_pipeline.storage import write_text_atomic
from paraclip_pipeline.training.config import TrainConfig
from paraclip_pipeline.training.loop import DistContext, LogFn, run_training
from paraclip_pipeline.training.prepared import PreparedData

JOB_FILE = "job.json"


class JobError(ValueError):
    """A job file that cannot be run."""


def job_dir_for(output_dir: Path) -> Path:
    return Path(output_dir).with_name(f"{Path(output_dir).name}.job")


def write_job(
    data: PreparedData,
    *,
    profile: ModelProfile,
    config: TrainConfig,
    output_dir: Path,
    inputs: list[dict[str, Any]],
    excluded: list[dict[str, str]] | None = None,
) -> Path:
    """Write a job file beside ``output_dir`` that points at the prepared data (on storage
    every rank sees; nothing is copied); returns the job file path."""
    job = {
        "prepared": data.directory,
        "profile": profile.to_dict(),
        "config": config.model_dump(mode="json"),
        "output_dir": str(Path(output_dir).resolve()),
        "inputs": inputs,
        "excluded": excluded or [],
    }
    return write_text_atomic(
        json.dumps(job, indent=2, default=str), job_dir_for(output_dir) / JOB_FILE
    )


def build_torchrun_command(job_path: Path, nproc: int) -> list[str]:
    """The torchrun command line (``python -m torch.distributed.run`` is torchrun)."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "paraclip_pipeline.training.distributed",
        "--job",
        str(Path(job_path).resolve()),
    ]


def read_job(job_path: Path) -> dict[str, Any]:
    try:
        job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise JobError(f"job file {job_path} cannot be read: {error}") from error
    missing = {"prepared", "profile", "config", "output_dir", "inputs"} - set(job)
    if missing:
        raise JobError(f"job file {job_path} lacks keys {sorted(missing)}")
    return job


@contextlib.contextmanager
def _reporter(is_main: bool) -> Iterator[tuple[LogFn, Any]]:
    """(log function, pipes context or None): Pipes when launched by Dagster, else stdout."""
    if is_main and PipesEnvVarParamsLoader().is_dagster_pipes_process():
        with open_dagster_pipes() as pipes:
            yield pipes.log.info, pipes
    else:
        yield (lambda message: print(message, flush=True)), None


def run_job_rank(job: dict[str, Any], job_path: Path, context: DistContext) -> None:
    """Train this rank of ``job`` in a process group already set up (by torchrun's ``main``
    or by a Ray Train worker): the same data, loop and checkpoint whoever launched it."""
    config = TrainConfig(**job["config"])
    data = PreparedData.open(Path(job["prepared"]))
    with _reporter(context.is_main) as (log, pipes):
        result = run_training(
            data,
            profile=ModelProfile.from_dict(job["profile"], source=str(job_path)),
            config=config,
            output_dir=Path(job["output_dir"]),
            inputs=job["inputs"],
            excluded=job.get("excluded", []),
            log=log,
            context=context,
        )
        if result is not None:
            summary = {"checkpoint_dir": str(result.checkpoint_dir), "metrics": result.metrics}
            log(json.dumps(summary))
            if pipes is not None:
                pipes.report_custom_message(summary)


def main(argv: list[str] | None = None) -> int:
    from paraclip_pipeline.quiet import silence_model_chatter

    silence_model_chatter()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--job", type=Path, required=True, help="job.json written by write_job")
    args = parser.parse_args(argv)
    job = read_job(args.job)
    use_cuda = TrainConfig(**job["config"]).device == "cuda"
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    context = DistContext(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        device=f"cuda:{local_rank}" if use_cuda else "cpu",
    )
    try:
        run_job_rank(job, args.job, context)
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
