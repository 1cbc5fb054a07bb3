"""``paraclip shards list | retire``."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from paraclip_pipeline.asset_names import CAPTION_SHARDS, RAW_CAPTIONS
from paraclip_pipeline.lineage.shard_status import QUARANTINE_REASON_KEY
from paraclip_pipeline.lineage.shards_command import list_shards, retire_shard


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


def test_list_shows_each_status_and_reason(instance) -> None:
    instance.add_dynamic_partitions(CAPTION_SHARDS, ["alpha", "broken"])
    instance.report_runless_asset_event(
        dg.AssetObservation(
            RAW_CAPTIONS, partition="broken", metadata={QUARANTINE_REASON_KEY: "b.jsonl: no rows"}
        )
    )
    lines = list_shards(instance, "rules-1").splitlines()
    assert lines[1].split()[:2] == ["alpha", "not_built"]
    assert lines[2].split(None, 2) == ["broken", "quarantined", "b.jsonl: no rows"]


def test_retire_refuses_unknown_keys_and_present_files(instance, tmp_path: Path, capsys) -> None:
    (tmp_path / "alpha.jsonl").write_text('{"caption": "a cat"}\n', encoding="utf-8")
    instance.add_dynamic_partitions(CAPTION_SHARDS, ["alpha", "gone"])
    assert retire_shard(instance, "nope", str(tmp_path)) == 2
    assert retire_shard(instance, "alpha", str(tmp_path)) == 2
    assert "still in" in capsys.readouterr().err
    assert retire_shard(instance, "gone", str(tmp_path)) == 0
    assert instance.get_dynamic_partitions(CAPTION_SHARDS) == ["alpha"]
