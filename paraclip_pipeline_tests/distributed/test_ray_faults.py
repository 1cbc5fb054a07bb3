"""A Ray worker killed mid-job: the pool restarts it, and nothing committed is asked for again."""

import os
import signal
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from paraclip_pipeline import schema
from paraclip_pipeline.asset_names import RAW_CAPTIONS, STAGE1_PARAPHRASES
from paraclip_pipeline.distributed.ray_shards import run_step_on_ray
from paraclip_pipeline.storage import StorageLayout
from paraclip_pipeline_tests.distributed.ray_support import ray_address
from paraclip_pipeline_tests.distributed.test_ray_paraphrase import (
    SUBJECTS,
    step_options,
    write_shards,
)
from paraclip_pipeline_tests.paraphrase.fake_openai_server import (
    FakeOpenAIServer,
    FakeServerScript,
)

__all__ = ["ray_address"]
pytestmark = pytest.mark.ray


def kill_a_pool_worker_after(server: FakeOpenAIServer, answered: int, killed: list[int]) -> None:
    """SIGKILL one live map worker (a paraphrasing actor) once ``answered`` requests were seen."""
    from ray.util.state import list_actors

    deadline = time.monotonic() + 60
    while len(server.script.requests) < answered and time.monotonic() < deadline:
        time.sleep(0.05)
    for actor in list_actors(filters=[("state", "=", "ALIVE")]):
        if "MapWorker" in actor.class_name and actor.pid:
            os.kill(actor.pid, signal.SIGKILL)
            killed.append(actor.pid)
            return


def test_killed_pool_worker_is_restarted_and_committed_answers_are_kept(
    ray_address: str, tmp_path: Path
) -> None:
    keys = write_shards(tmp_path / "shards")
    captions = len(keys) * len(SUBJECTS)
    with FakeOpenAIServer(FakeServerScript(latency_s=0.3)) as server:
        options = step_options(tmp_path, server.base_url)
        options["paraphraser"] |= {"concurrency": 1, "chunk_size": 1}
        run_step_on_ray(RAW_CAPTIONS, keys, options, address=ray_address)
        killed: list[int] = []
        killer = threading.Thread(target=kill_a_pool_worker_after, args=(server, 6, killed))
        killer.start()
        records = run_step_on_ray(STAGE1_PARAPHRASES, keys, options, address=ray_address, actors=2)
        killer.join()
        assert killed, "no paraphrasing actor was found to kill"
        assert [r["error"] for r in records] == [None] * len(keys)
        layout = StorageLayout(tmp_path / "storage")
        for key in keys:
            table = pq.read_table(layout.partition_file(STAGE1_PARAPHRASES, key))
            assert set(table.column(schema.STATUS_1).to_pylist()) == {"ok"}, key
        # Only what the dead actor had in flight or uncommitted is asked again (chunk_size 1,
        # one request in flight per actor), never a committed answer.
        asked_again = len(server.script.requests) - captions
        assert 0 <= asked_again <= 2, asked_again
        # The rerun finds every answer in the cache.
        before = len(server.script.requests)
        run_step_on_ray(STAGE1_PARAPHRASES, keys, options, address=ray_address, actors=2)
        assert len(server.script.requests) == before
