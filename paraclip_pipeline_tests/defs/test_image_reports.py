"""Unusable images are counted in the run's metadata and said once as a Dagster warning
event (issue 13: they vanished with a line on the code server's stderr only)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import dagster as dg
import pytest

from paraclip_pipeline.defs.captions import raw_captions
from paraclip_pipeline.defs.io import ArrowParquetIOManagerResource
from paraclip_pipeline.defs.metadata import UNUSABLE_IMAGES_KEY
from paraclip_pipeline.defs.partitions import caption_shards
from paraclip_pipeline.defs.resources import (
    ClipModelResource,
    ShardSourceResource,
    StorageResource,
)
from paraclip_pipeline.defs.training import image_embeddings

KEY = "pics"


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:
        test_instance.add_dynamic_partitions(caption_shards.name, [KEY])
        yield test_instance


def _storage(root: Path) -> dict[str, dg.ConfigurableResource | dg.ConfigurableIOManagerFactory]:
    """raw_captions streams into the storage root, so the IO manager must read it there."""
    return {
        "storage": StorageResource(root=str(root)),
        "io_manager": ArrowParquetIOManagerResource(root=str(root)),
    }


def _write_shard(shards: Path, image_paths: list[str | None]) -> None:
    shards.mkdir(parents=True, exist_ok=True)
    records = [
        {"id": f"p-{i}", "caption": f"photo number {i} of a garden", "image_path": path}
        for i, path in enumerate(image_paths)
    ]
    (shards / f"{KEY}.jsonl").write_text(
        "".join(json.dumps(record) + "\n" for record in records), encoding="utf-8"
    )


def _warnings(result: dg.ExecuteInProcessResult, instance: dg.DagsterInstance) -> list[str]:
    return [
        entry.user_message
        for entry in instance.all_logs(result.run_id)
        if entry.level == logging.WARNING and "usable image" in entry.user_message
    ]


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, object]:
    (event,) = [
        e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == asset
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_raw_captions_counts_each_reason_and_warns_once_in_the_run(
    tmp_path: Path, instance: dg.DagsterInstance, capfd: pytest.CaptureFixture[str]
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    (images / "rose.jpg").write_bytes(b"jpeg")
    _write_shard(
        tmp_path / "elsewhere" / "shards",
        ["rose.jpg", "tulip.jpg", "../escape.jpg", "/etc/passwd", "https://x/y.jpg", None],
    )
    source = ShardSourceResource(
        location=str(tmp_path / "elsewhere" / "shards"), image_root=str(images)
    )
    result = dg.materialize(
        [raw_captions],
        partition_key=KEY,
        instance=instance,
        resources={"shard_source": source, **_storage(tmp_path / "storage")},
    )
    assert result.success
    metadata = _metadata(result, "raw_captions")
    assert metadata[UNUSABLE_IMAGES_KEY] == {"not_a_path": 1, "escaping": 2, "missing": 1}
    assert metadata["rows_with_image_path"] == 1
    (warning,) = _warnings(result, instance)
    assert warning.startswith(
        "shard pics: 4 row(s) have no usable image (1 not_a_path, 2 escaping, 1 missing), e.g. "
    )
    assert "row 1 'tulip.jpg': missing" in warning and "row 2 '../escape.jpg': escaping" in warning
    # Nothing about it on raw stderr any more.
    assert "image path" not in capfd.readouterr().err


def test_clean_shard_reports_zero_and_says_nothing(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    _write_shard(tmp_path / "shards", [None, None])
    source = ShardSourceResource(location=str(tmp_path / "shards"))
    result = dg.materialize(
        [raw_captions],
        partition_key=KEY,
        instance=instance,
        resources={"shard_source": source, **_storage(tmp_path / "storage")},
    )
    assert _metadata(result, "raw_captions")[UNUSABLE_IMAGES_KEY] == {
        "not_a_path": 0,
        "escaping": 0,
        "missing": 0,
    }
    assert _warnings(result, instance) == []


def test_image_embeddings_counts_unreadable_files_and_warns_once(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    from PIL import Image

    shards = tmp_path / "shards"
    _write_shard(shards, ["good.png", "broken.jpg", None])
    Image.new("RGB", (16, 16), (10, 200, 10)).save(shards / "good.png")
    (shards / "broken.jpg").write_bytes(b"not a jpeg at all")
    result = dg.materialize(
        [raw_captions, image_embeddings],
        partition_key=KEY,
        instance=instance,
        resources={
            "shard_source": ShardSourceResource(location=str(shards)),
            "clip_model": ClipModelResource(profile="tiny-random"),
            **_storage(tmp_path / "storage"),
        },
    )
    assert result.success
    metadata = _metadata(result, "image_embeddings")
    assert metadata[UNUSABLE_IMAGES_KEY] == {"unreadable": 1}
    assert metadata["rows_with_image"] == 1
    (warning,) = _warnings(result, instance)
    assert warning.startswith("shard pics: 1 row(s) have no usable image (1 unreadable), e.g. ")
    assert "broken.jpg" in warning
