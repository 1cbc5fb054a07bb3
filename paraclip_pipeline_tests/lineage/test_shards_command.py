"""``paraclip shards list | retire``."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.data_version import CODE_VERSION_TAG, DATA_VERSION_TAG

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
    assert lines[1].split()[:3] == ["alpha", "not_built", "-"]
    assert lines[2].split(None, 3) == ["broken", "quarantined", "-", "b.jsonl: no rows"]
    assert lines[3].startswith("0 shard(s) pending retraining")


def test_list_shows_what_is_pending_retraining(instance) -> None:
    instance.add_dynamic_partitions(CAPTION_SHARDS, ["alpha", "beta"])
    for shard in ("alpha", "beta", "gone"):
        for asset, tags in (
            ("image_embeddings", {}),
            ("filtered_pairs", {CODE_VERSION_TAG: "rules-1"}),
        ):
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    asset, partition=shard, tags={DATA_VERSION_TAG: f"{asset}-{shard}", **tags}
                )
            )
    trained = [
        {
            "partition": shard,
            "filtered_pairs_data_version": f"filtered_pairs-{shard}",
            "upstream": {"image_embeddings": {"data_version": f"image_embeddings-{shard}"}},
        }
        for shard in ("alpha", "gone")
    ]
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            "text_encoder_checkpoint",
            metadata={"manifest": dg.MetadataValue.json({"inputs": trained})},
        )
    )
    lines = list_shards(instance, "rules-1").splitlines()
    assert lines[1].split()[:3] == ["alpha", "ok", "-"]
    assert lines[2].split()[:3] == ["beta", "ok", "new"]
    assert lines[3] == "retired since the latest checkpoint: gone"
    assert lines[4].startswith("2 shard(s) pending retraining")


def test_retire_refuses_unknown_keys_and_present_files(instance, tmp_path: Path, capsys) -> None:
    (tmp_path / "alpha.jsonl").write_text('{"caption": "a cat"}\n', encoding="utf-8")
    instance.add_dynamic_partitions(CAPTION_SHARDS, ["alpha", "gone"])
    assert retire_shard(instance, "nope", str(tmp_path)) == 2
    assert retire_shard(instance, "alpha", str(tmp_path)) == 2
    assert "still in" in capsys.readouterr().err
    assert retire_shard(instance, "gone", str(tmp_path)) == 0
    assert instance.get_dynamic_partitions(CAPTION_SHARDS) == ["alpha"]
