"""Joining the Ray cluster, in one place for the data steps and training.

A Ray worker is started by its node, not by the process that submits work, and Ray Data
imports pyarrow in it before a task's code runs, so the pool the package's import picks
(``arrow_pool``) comes too late there: such a worker stayed on pyarrow's default. The job's
runtime environment carries the pool's variable to every worker the job starts instead.
"""

from __future__ import annotations

from paraclip_pipeline.arrow_pool import worker_env


def join_cluster(address: str | None) -> None:
    """Connect this process to the cluster at ``address`` (None: the one it runs in, as a
    submitted Ray job); a no-op when it is connected already."""
    import ray

    ray.init(
        address=address,
        ignore_reinit_error=True,
        log_to_driver=False,
        runtime_env={"env_vars": worker_env()},
    )
