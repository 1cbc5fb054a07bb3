"""Joining the cluster (``ray_cluster.join_cluster``): the workers it starts use the
pipeline's Arrow pool even when they import pyarrow before the package, as Ray Data's do."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from paraclip_pipeline.arrow_pool import ARROW_POOL_ENV, worker_env
from paraclip_pipeline.distributed.ray_cluster import join_cluster
from paraclip_pipeline_tests.distributed.ray_support import ray_address
from paraclip_pipeline_tests.test_arrow_pool import needs_jemalloc

__all__ = ["ray_address"]


# Built from source so that Ray ships the function itself: one imported from this module
# would import the package (and pick the pool) in the worker before pyarrow.
_PROBE = """
def pool_of_a_fresh_worker():
    import pyarrow as pa
    return pa.default_memory_pool().backend_name
"""


def _probe() -> Callable[[], str]:
    namespace: dict[str, Any] = {"__name__": "ray_pool_probe"}
    exec(_PROBE, namespace)
    return namespace["pool_of_a_fresh_worker"]


def test_worker_env_carries_the_pool_this_process_chose(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ARROW_POOL_ENV, "system")
    assert worker_env() == {ARROW_POOL_ENV: "system"}
    monkeypatch.delenv(ARROW_POOL_ENV)
    assert worker_env() == {}


@needs_jemalloc
@pytest.mark.ray
def test_workers_of_a_joined_cluster_use_the_pipelines_pool(ray_address: str) -> None:
    import ray

    assert os.environ.get(ARROW_POOL_ENV) == "jemalloc"  # the package's import set it here
    ray.shutdown()  # a connection another test left would keep its own runtime environment
    join_cluster(ray_address)
    try:
        pools = ray.get([ray.remote(_probe()).remote() for _ in range(2)])
    finally:
        ray.shutdown()
    assert pools == ["jemalloc", "jemalloc"]
