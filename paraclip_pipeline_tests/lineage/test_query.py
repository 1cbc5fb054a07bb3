"""`paraclip lineage` on a hand-made checkpoint: run-id prefixes, a caption's source row
and id, image_embeddings in the chain, "-" for missing values."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster._core.definitions.data_version import DATA_VERSION_TAG

from paraclip_pipeline import schema
from paraclip_pipeline.lineage.query import LineageError, resolve_checkpoint_dir, trace
from paraclip_pipeline.modeling.checkpoint_format import CHECKPOINT_FORMAT, MANIFEST_FILE
from paraclip_pipeline.storage import StorageLayout

RUN_ID = "3f2a9c1e-0000-4000-8000-000000000001"


def _checkpoint(layout: StorageLayout, run_id: str, inputs: list[dict]) -> Path:
    directory = layout.checkpoints_dir / run_id
    directory.mkdir(parents=True)
    manifest = {"format": CHECKPOINT_FORMAT, "weights_sha256": None, "inputs": inputs}
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
    pq.write_table(pa.table({schema.CAPTION_ID: ["c1"]}), directory / "trained_caption_ids.parquet")
    return directory


@pytest.fixture
def layout(tmp_path: Path) -> StorageLayout:
    return StorageLayout(tmp_path / "storage")


def test_any_unique_run_id_prefix_resolves(layout: StorageLayout) -> None:
    directory = _checkpoint(layout, RUN_ID, [])
    assert resolve_checkpoint_dir(RUN_ID[:8], layout) == directory
    _checkpoint(layout, "3f2a0000-0000-4000-8000-000000000002", [])
    with pytest.raises(LineageError, match="matches 2 checkpoints"):
        resolve_checkpoint_dir("3f2a", layout)
    with pytest.raises(LineageError, match="neither"):
        resolve_checkpoint_dir("ffff", layout)


def test_caption_trace_names_file_row_and_source_id(layout: StorageLayout, tmp_path) -> None:
    assets = layout.root / "assets"
    (assets / "raw_captions").mkdir(parents=True)
    raw = pa.table(
        {
            schema.CAPTION_ID: ["c1"],
            schema.SHARD: ["alpha"],
            schema.TEXT: ["a red bus"],
            schema.INPUT_ISSUE: pa.array([None], pa.string()),
            schema.SOURCE_ROW: [7],
            schema.SAMPLE_ID: ["laion-42"],
        }
    )
    pq.write_table(raw, assets / "raw_captions" / "alpha.parquet")
    inputs = [
        {
            "partition": "alpha",
            "rows": 1,
            "train_rows": None,
            "filtered_pairs_storage_id": None,
            "upstream": {
                "raw_captions": {"storage_id": 1, "data_version": "sha-raw"},
                "image_embeddings": {"storage_id": 2, "data_version": "sha-img"},
            },
        }
    ]
    _checkpoint(layout, RUN_ID, inputs)
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                "raw_captions",
                partition="alpha",
                tags={DATA_VERSION_TAG: "sha-raw"},
                metadata={"source": dg.MetadataValue.path("/shards/alpha.jsonl")},
            )
        )
        raw_sid = instance.fetch_materializations(dg.AssetKey("raw_captions"), limit=1)
        inputs[0]["upstream"]["raw_captions"]["storage_id"] = raw_sid.records[0].storage_id
        (layout.checkpoints_dir / RUN_ID / MANIFEST_FILE).write_text(
            json.dumps({"format": CHECKPOINT_FORMAT, "inputs": inputs}), encoding="utf-8"
        )
        report = trace(RUN_ID[:8], layout=layout, instance=instance, caption_id="c1")
    [shard] = report.shards
    assert [step.asset for step in shard.steps][-1] == "image_embeddings"
    assert shard.steps[-1].data_version == "sha-img"
    assert report.caption is not None
    assert (report.caption.source_file, report.caption.source_row, report.caption.sample_id) == (
        "/shards/alpha.jsonl",
        7,
        "laion-42",
    )
    text = report.to_text()
    assert "source       : /shards/alpha.jsonl row 7, source id laion-42" in text
    assert "T'  (-) : -" in text and "train_rows=-" in text
    assert "None" not in text
