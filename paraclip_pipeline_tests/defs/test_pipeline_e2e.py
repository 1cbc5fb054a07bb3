"""End to end on two tiny shards: ids flow from raw captions into the checkpoint manifest,
unchanged shards keep their data version, and a rules edit re-runs only the filter onwards."""

import json
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from paraclip_pipeline import schema
from paraclip_pipeline.defs.retraining import build_retrain_sensor
from paraclip_pipeline.defs.staleness import build_rules_staleness_sensor
from paraclip_pipeline.lineage.event_log import latest_partition_versions
from paraclip_pipeline.lineage.query import trace
from paraclip_pipeline.retrain_policy import RetrainPolicy
from paraclip_pipeline.sources import discover_shards, shard_content_hash
from paraclip_pipeline.storage import StorageLayout
from paraclip_pipeline_tests.defs.support import SHARD_CAPTIONS, Pipeline

pytestmark = pytest.mark.slow


def asset_table(pipeline: Pipeline, asset: str, shard: str):
    return pq.read_table(StorageLayout(pipeline.settings.storage_root).partition_file(asset, shard))


def materialization_count(instance: dg.DagsterInstance, asset: str) -> int:
    return len(instance.fetch_materializations(dg.AssetKey(asset), limit=1000).records)


def latest_metadata(instance: dg.DagsterInstance, asset: str) -> dict:
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    assert event is not None and event.asset_materialization is not None
    return {key: value.value for key, value in event.asset_materialization.metadata.items()}


def test_rows_and_ids_flow_from_raw_captions_to_the_checkpoint(pipeline: Pipeline) -> None:
    pipeline.run_all_shards()
    training = pipeline.run_training()
    assert training.success

    kept_ids: dict[str, set[str]] = {}
    for shard, captions in SHARD_CAPTIONS.items():
        raw = asset_table(pipeline, "raw_captions", shard)
        assert len(raw) == len(captions)
        raw_ids = raw.column(schema.CAPTION_ID).to_pylist()
        for asset in ("stage1_paraphrases", "stage2_paraphrases", "image_embeddings"):
            assert asset_table(pipeline, asset, shard).column(schema.CAPTION_ID).to_pylist() == (
                raw_ids
            ), asset
        kept = asset_table(pipeline, "filtered_pairs", shard)
        kept_ids[shard] = set(kept.column(schema.CAPTION_ID).to_pylist())
        assert kept_ids[shard] <= set(raw_ids)
        assert 0 < len(kept) < len(raw)  # the file name and the blank caption never pass

    checkpoint_dir = Path(
        latest_metadata(pipeline.instance, "text_encoder_checkpoint")["checkpoint_dir"]
    )
    manifest = json.loads((checkpoint_dir / "manifest.json").read_text())
    inputs = {item["partition"]: item for item in manifest["inputs"]}
    assert set(inputs) == set(SHARD_CAPTIONS)
    for shard, ids in kept_ids.items():
        assert inputs[shard]["rows"] == len(ids)
        assert inputs[shard]["filtered_pairs_storage_id"] is not None
    trained = pq.read_table(checkpoint_dir / manifest["trained_caption_ids_file"])
    trained_ids = set(trained.column(schema.CAPTION_ID).to_pylist())
    assert trained_ids and trained_ids <= set().union(*kept_ids.values())

    report = latest_metadata(pipeline.instance, "benchmark_report")
    assert Path(report["report_markdown"]).is_file()
    assert Path(report["report_html"]).is_file()
    # The public benchmarks of the tiny data directory: 8 scores, in their own section.
    assert report["public_benchmark_scores"] == 8
    assert "## Public benchmarks" in Path(report["report_markdown"]).read_text()
    # What was scored is recorded, and the pretrained baseline's embeddings were cached.
    context = json.loads(Path(report["results_json"]).read_text())["context"]
    assert context["public benchmark selection"] == "files: all; all items"
    assert "paws/test.tsv: all 4 items" in context["public benchmark files scored"]
    assert report["public_benchmark_time_s"] > 0
    assert list((pipeline.settings.storage_root / "cache" / "embeddings").rglob("*.parquet"))
    # The guard rail ran on them: f30k dev (4 metrics) and SugarCrepe++ are gated.
    (check,) = training.get_asset_check_evaluations()
    assert check.check_name == "no_dev_regression"
    assert check.metadata["gated_metrics"].value == 5

    # Lineage: every shard traces back to its raw file's content hash.
    lineage = trace(
        str(checkpoint_dir),
        layout=StorageLayout(pipeline.settings.storage_root),
        instance=pipeline.instance,
        caption_id=sorted(trained_ids)[0],
    )
    hashes = {
        s.key: shard_content_hash(s)
        for s in discover_shards(pipeline.settings.shards_location).shards
    }
    for shard in lineage.shards:
        assert [step.asset for step in shard.steps] == [
            "filtered_pairs",
            "stage2_paraphrases",
            "stage1_paraphrases",
            "raw_captions",
            "image_embeddings",
        ]
        assert all(step.storage_id is not None for step in shard.steps)
        assert shard.steps[3].data_version == hashes[shard.partition]
    assert lineage.caption is not None
    assert lineage.caption.verdict == "kept"
    assert lineage.caption.source_file and lineage.caption.source_file.endswith(".jsonl")
    assert lineage.caption.source_row is not None and lineage.caption.sample_id
    assert lineage.caption.trained_in_this_checkpoint
    assert str(checkpoint_dir) in lineage.caption.trained_in
    assert "shard-a" in lineage.to_text() and json.loads(lineage.to_json())["caption"]


def test_unchanged_shard_keeps_its_data_version_and_makes_no_calls(pipeline: Pipeline) -> None:
    def versions() -> dict[str, str | None]:
        return {
            asset: latest_partition_versions(pipeline.instance, dg.AssetKey(asset))[
                "shard-a"
            ].data_version
            for asset in (
                "raw_captions",
                "stage1_paraphrases",
                "stage2_paraphrases",
                "filtered_pairs",
            )
        }

    assert pipeline.run_shard("shard-a").success
    first = versions()
    calls_after_first = pipeline.counter.calls
    assert calls_after_first > 0
    shard = next(
        s for s in discover_shards(pipeline.settings.shards_location).shards if s.key == "shard-a"
    )
    assert first["raw_captions"] == shard_content_hash(shard)

    assert pipeline.run_shard("shard-a").success
    assert versions() == first  # same content, same data versions: nothing downstream is stale
    assert pipeline.counter.calls == calls_after_first  # every row answered from the cache


def _filtered_pairs_code_version(pipeline: Pipeline) -> str:
    key = dg.AssetKey("filtered_pairs")
    return pipeline.defs.resolve_assets_def(key).code_versions_by_key[key] or ""


def test_rules_edit_reruns_only_the_filter_and_what_follows(pipeline: Pipeline) -> None:
    pipeline.run_all_shards()
    assert pipeline.run_training().success
    baseline = dg.evaluate_automation_conditions(defs=pipeline.defs, instance=pipeline.instance)
    assert baseline.total_requested == 0  # everything is up to date
    stage_counts = {
        a: materialization_count(pipeline.instance, a)
        for a in ("stage1_paraphrases", "stage2_paraphrases", "raw_captions")
    }
    calls_before = pipeline.counter.calls
    versions_before = latest_partition_versions(pipeline.instance, dg.AssetKey("filtered_pairs"))

    # Half the rows in test instead of a tenth: rows change split, so the pairs' data changes.
    pipeline.edit_rules(lambda rules: rules["split"].update(test_fraction=0.5))
    after_edit = dg.evaluate_automation_conditions(
        defs=pipeline.defs, instance=pipeline.instance, cursor=baseline.cursor
    )
    requested = {
        (asset, partition)
        for asset in ("raw_captions", "stage1_paraphrases", "stage2_paraphrases", "filtered_pairs")
        for partition in after_edit.get_requested_partitions(dg.AssetKey(asset))
    }
    assert requested == {("filtered_pairs", shard) for shard in SHARD_CAPTIONS}
    # Before anything reruns, each stale partition is marked on its page.
    code_version = _filtered_pairs_code_version(pipeline)
    stale = build_rules_staleness_sensor(code_version)(
        dg.build_sensor_context(instance=pipeline.instance)
    )
    assert {event.partition for event in stale.asset_events} == set(SHARD_CAPTIONS)
    # ... and retraining waits for the refilter of the shards it trained on.
    policy = build_retrain_sensor(RetrainPolicy.parse("eager"), code_version)
    assert policy(dg.build_sensor_context(instance=pipeline.instance)).run_requests == []

    # Run exactly what the automation asked for: filtered_pairs, shard by shard.
    refilter = pipeline.defs.resolve_job_def("shard_job").get_subset(
        asset_selection={dg.AssetKey("filtered_pairs")}
    )
    for shard in SHARD_CAPTIONS:
        assert refilter.execute_in_process(partition_key=shard, instance=pipeline.instance).success
    assert pipeline.counter.calls == calls_before  # the LLM was never called again
    for asset, count in stage_counts.items():
        assert materialization_count(pipeline.instance, asset) == count, asset

    versions_after = latest_partition_versions(pipeline.instance, dg.AssetKey("filtered_pairs"))
    assert any(
        versions_after[shard].data_version != versions_before[shard].data_version
        for shard in SHARD_CAPTIONS
    )
    # Automation follows data versions: changed pairs retrain (the eager policy) and
    # nothing upstream reruns.
    [retrain] = policy(dg.build_sensor_context(instance=pipeline.instance)).run_requests
    assert retrain.job_name in (None, "training_job")
    next_tick = dg.evaluate_automation_conditions(
        defs=pipeline.defs, instance=pipeline.instance, cursor=after_edit.cursor
    )
    assert next_tick.get_num_requested(dg.AssetKey("stage1_paraphrases")) == 0
