"""Hostile shard file names reaching ``new_shard_sensor``: reported, never registered."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from paraclip_pipeline.sources import discover_shards
from paraclip_pipeline_tests.defs.test_shard_sensor import tick, write_shard

HOSTILE_NAMES = ["shard a", "shärd", "..hidden", "-dash-first", "x" * 129]


def test_sensor_registers_and_runs_only_valid_shard_names(tmp_path: Path) -> None:
    for name in [*HOSTILE_NAMES, "good-1"]:
        write_shard(tmp_path, name, ["a red kite over a beach"])
    with dg.instance_for_test() as instance:
        result = tick(instance, tmp_path, None)

    [request] = result.dynamic_partitions_requests
    assert list(request.partition_keys) == ["good-1"]
    assert [run.partition_key for run in result.run_requests] == ["good-1"]
    # What the sensor logs as "ignoring shard <name>: <reason>", one line per file.
    reasons = dict(discover_shards(str(tmp_path)).rejected)
    assert set(reasons) == {f"{name}.jsonl" for name in HOSTILE_NAMES}
    assert "it contains whitespace" in reasons["shard a.jsonl"]
    assert "it contains non-ASCII characters" in reasons["shärd.jsonl"]
    assert "it is 129 characters long" in reasons[f"{'x' * 129}.jsonl"]
