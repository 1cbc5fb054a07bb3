"""The new-shard sensor and the nightly refresh, with Dagster's test contexts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.data_version import DATA_VERSION_TAG

from paraclip_pipeline.defs.automation import new_shard_sensor, refresh_requests
from paraclip_pipeline.defs.partitions import caption_shards
from paraclip_pipeline.defs.resources import ShardSourceResource
from paraclip_pipeline.sources import discover_shards, shard_content_hash


def write_shard(directory: Path, name: str, captions: list[str]) -> Path:
    path = directory / f"{name}.jsonl"
    path.write_text("".join(json.dumps({"caption": c}) + "\n" for c in captions), encoding="utf-8")
    return path


@pytest.fixture
def shard_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "shards"
    directory.mkdir()
    write_shard(directory, "alpha", ["a red bicycle leaning on a wall", "two cats on a sofa"])
    write_shard(directory, "beta", ["a bowl of ramen with egg", "snowy mountain at dawn"])
    return directory


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


def tick(instance: dg.DagsterInstance, location: Path, cursor: str | None) -> dg.SensorResult:
    with dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"shard_source": ShardSourceResource(location=str(location))},
    ) as context:
        return new_shard_sensor(context)


def record_materialization(instance: dg.DagsterInstance, key: str, data_version: str) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            "raw_captions", partition=key, tags={DATA_VERSION_TAG: data_version}
        )
    )


def apply_partition_requests(instance: dg.DagsterInstance, result: dg.SensorResult) -> None:
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))


def test_new_shards_are_registered_and_requested(instance, shard_dir: Path) -> None:
    result = tick(instance, shard_dir, None)
    [add_request] = result.dynamic_partitions_requests
    assert add_request.partitions_def_name == caption_shards.name
    assert sorted(add_request.partition_keys) == ["alpha", "beta"]
    assert sorted(r.partition_key for r in result.run_requests) == ["alpha", "beta"]
    assert all(":" in r.run_key for r in result.run_requests)


def test_unchanged_shards_are_not_requested_again(instance, shard_dir: Path) -> None:
    first = tick(instance, shard_dir, None)
    apply_partition_requests(instance, first)
    for shard in discover_shards(str(shard_dir)).shards:
        record_materialization(instance, shard.key, shard_content_hash(shard))
    second = tick(instance, shard_dir, first.cursor)
    assert second.run_requests == []
    assert not second.dynamic_partitions_requests
    # Touching a file without changing its bytes moves its mtime but is no change.
    alpha = shard_dir / "alpha.jsonl"
    os.utime(alpha, ns=(alpha.stat().st_atime_ns, alpha.stat().st_mtime_ns + 10**9))
    third = tick(instance, shard_dir, second.cursor)
    assert third.run_requests == []


def test_changed_shard_gets_a_run_with_its_new_hash(instance, shard_dir: Path) -> None:
    first = tick(instance, shard_dir, None)
    apply_partition_requests(instance, first)
    for shard in discover_shards(str(shard_dir)).shards:
        record_materialization(instance, shard.key, shard_content_hash(shard))
    write_shard(shard_dir, "beta", ["a bowl of ramen with egg", "a lighthouse in fog"])
    beta = shard_dir / "beta.jsonl"
    os.utime(beta, ns=(beta.stat().st_atime_ns, beta.stat().st_mtime_ns + 10**9))
    second = tick(instance, shard_dir, first.cursor)
    [request] = second.run_requests
    assert request.partition_key == "beta"
    new_hash = shard_content_hash(discover_shards(str(shard_dir)).shards[1])
    assert request.run_key.startswith(f"beta:{new_hash}:")


def test_bad_shard_name_is_reported_not_registered(instance, shard_dir: Path) -> None:
    write_shard(shard_dir, "bad name", ["a caption in a badly named file"])
    result = tick(instance, shard_dir, None)
    assert sorted(result.dynamic_partitions_requests[0].partition_keys) == ["alpha", "beta"]
    assert all(r.partition_key != "bad name" for r in result.run_requests)


def _materialize(instance, asset: str, key: str, code_version: str = "v") -> None:
    tags = {DATA_VERSION_TAG: f"{asset}-{key}", "dagster/code_version": code_version}
    instance.report_runless_asset_event(dg.AssetMaterialization(asset, partition=key, tags=tags))


def test_refresh_requests_missing_and_stale_shards(instance) -> None:
    instance.add_dynamic_partitions(caption_shards.name, ["alpha", "beta", "gamma"])
    for key in ("alpha", "beta"):
        _materialize(instance, "raw_captions", key)
        _materialize(instance, "image_embeddings", key)
    _materialize(instance, "filtered_pairs", "alpha", code_version="rules-new")
    _materialize(instance, "filtered_pairs", "beta", code_version="rules-old")
    requested = {r.partition_key for r in refresh_requests(instance, "rules-new")}
    # gamma was never built; beta was filtered with old rules; alpha is current.
    assert requested == {"beta", "gamma"}


def test_refresh_leaves_retraining_to_the_policy(instance) -> None:
    instance.add_dynamic_partitions(caption_shards.name, ["alpha"])
    _materialize(instance, "raw_captions", "alpha")
    _materialize(instance, "image_embeddings", "alpha")
    instance.report_runless_asset_event(dg.AssetMaterialization("text_encoder_checkpoint"))
    _materialize(instance, "filtered_pairs", "alpha", code_version="rules")
    # Pairs newer than the checkpoint: the retraining policy sensor decides, not the refresh.
    assert refresh_requests(instance, "rules") == []
