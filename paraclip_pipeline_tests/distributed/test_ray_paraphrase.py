"""Batch paraphrasing on Ray: an actor pool of async clients against the fake server."""

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from paraclip_pipeline import schema
from paraclip_pipeline.asset_names import RAW_CAPTIONS, STAGE1_PARAPHRASES
from paraclip_pipeline.distributed.ray_shards import StepOptions, run_step_on_ray
from paraclip_pipeline.distributed.shard_steps import paraphraser_config
from paraclip_pipeline.paraphrase.engine import run_paraphrase_stage
from paraclip_pipeline.storage import StorageLayout
from paraclip_pipeline_tests.distributed.ray_support import ray_address
from paraclip_pipeline_tests.paraphrase.fake_openai_server import (
    FakeOpenAIServer,
    FakeServerScript,
)

__all__ = ["ray_address"]
pytestmark = pytest.mark.ray

SUBJECTS = ["dog", "cat", "horse", "boat", "kite", "bridge"]
PLACES = ["park", "beach", "field", "lake"]


def write_shards(directory: Path) -> list[str]:
    """Four shards of six distinct captions each."""
    directory.mkdir(parents=True)
    keys = []
    for number, place in enumerate(PLACES):
        key = f"shard-{number}"
        rows = [
            {"id": f"{key}-{i}", "caption": f"a {s} near the {place}"}
            for i, s in enumerate(SUBJECTS)
        ]
        (directory / f"{key}.jsonl").write_text("\n".join(map(json.dumps, rows)) + "\n")
        keys.append(key)
    return keys


def step_options(tmp_path: Path, base_url: str) -> StepOptions:
    return StepOptions(
        storage_root=str(tmp_path / "storage"),
        batch_rows=1 << 16,
        location=str(tmp_path / "shards"),
        image_root=None,
        max_caption_chars=2000,
        paraphraser={
            "backend": "openai_compatible",
            "model": "fake-model",
            "base_url": base_url,
            "concurrency": 4,
            "chunk_size": 3,
        },
    )


def test_actor_pool_paraphrases_every_shard_once_into_the_shared_cache(
    ray_address: str, tmp_path: Path
) -> None:
    keys = write_shards(tmp_path / "shards")
    with FakeOpenAIServer(FakeServerScript(latency_s=0.05)) as server:
        options = step_options(tmp_path, server.base_url)
        assert not any(
            r["error"] for r in run_step_on_ray(RAW_CAPTIONS, keys, options, address=ray_address)
        )
        records = run_step_on_ray(STAGE1_PARAPHRASES, keys, options, address=ray_address, actors=2)
        assert [r["error"] for r in records] == [None] * len(keys)
        # One request per caption across the pool: no shard was paraphrased twice.
        assert len(server.script.requests) == len(keys) * len(SUBJECTS)
        assert server.script.peak_in_flight > 1

        layout = StorageLayout(tmp_path / "storage")
        for key in keys:
            on_ray = pq.read_table(layout.partition_file(STAGE1_PARAPHRASES, key))
            assert set(on_ray.column(schema.STATUS_1).to_pylist()) == {"ok"}, key
            # The cache the actors committed to is the one an in-process run reads: no new call.
            raw = pq.read_table(layout.partition_file(RAW_CAPTIONS, key))
            again = run_paraphrase_stage(
                raw.select(list(schema.STAGE1_INPUT_COLUMNS)),
                stage=1,
                config=paraphraser_config(options),
                cache_dir=layout.paraphrase_cache_dir,
            )
            assert again.stats.calls == 0 and again.stats.cache_hits == len(SUBJECTS)
            assert again.table.equals(on_ray), key
        assert len(server.script.requests) == len(keys) * len(SUBJECTS)
