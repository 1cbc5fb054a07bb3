"""Two processes run ``shard_job`` on the same partition at once, against one file-based
instance and one storage root: both succeed and agree, nothing is torn or corrupted."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest
import yaml

from paraclip_pipeline import schema
from paraclip_pipeline.defs.automation import PER_SHARD_ASSETS
from paraclip_pipeline.defs.partitions import caption_shards
from paraclip_pipeline.instance import prepare_dagster_home
from paraclip_pipeline.settings import REPO_ROOT
from paraclip_pipeline.storage import StorageLayout, table_fingerprint
from paraclip_pipeline_tests.defs.support import TINY_TRAINING, write_tiny_shards
from paraclip_pipeline_tests.reliability.support import start_worker, temp_files

SHARD = "shard-a"
ASSET_SCHEMAS = {
    "stage1_paraphrases": schema.STAGE1_SCHEMA,
    "stage2_paraphrases": schema.STAGE2_SCHEMA,
    "filtered_pairs": schema.FILTERED_PAIRS_SCHEMA,
    "image_embeddings": schema.IMAGE_EMBEDDINGS_SCHEMA,
}


def _settings_file(tmp_path: Path) -> Path:
    rules = yaml.safe_load((REPO_ROOT / "data" / "filter_rules.yaml").read_text(encoding="utf-8"))
    rules["pass_rate"] = {"min": 0.0, "max": 1.0}
    rules_path = tmp_path / "rules.yaml"
    rules_path.write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
    train_path = tmp_path / "train.yaml"
    train_path.write_text(yaml.safe_dump(TINY_TRAINING), encoding="utf-8")
    write_tiny_shards(tmp_path / "shards")
    settings = {
        "storage_root": str(tmp_path / "storage"),
        "shards_location": str(tmp_path / "shards"),
        "image_root": None,
        "filter_rules_path": str(rules_path),
        "train_config_path": str(train_path),
        "sts_dir": None,
        "model_profile": "tiny-random",
        "refresh_cron": "0 2 * * *",
    }
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(settings), encoding="utf-8")
    return path


@pytest.mark.slow
def test_two_runs_of_one_partition_at_once_are_safe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_path = _settings_file(tmp_path)
    layout = StorageLayout(tmp_path / "storage")
    monkeypatch.setenv("DAGSTER_HOME", str(layout.dagster_home))
    prepare_dagster_home(layout.dagster_home)
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions(caption_shards.name, [SHARD])

    env = {"DAGSTER_HOME": str(layout.dagster_home)}
    workers = [start_worker("shard_job", str(settings_path), SHARD, env=env) for _ in range(2)]
    outcomes = []
    for worker in workers:
        stdout, stderr = worker.communicate(timeout=300)
        assert worker.returncode == 0, stderr[-3000:]
        outcomes.append(json.loads(stdout.strip().splitlines()[-1]))
    assert [outcome["success"] for outcome in outcomes] == [True, True]

    with dg.DagsterInstance.get() as instance:
        stats = [instance.get_run_stats(outcome["run_id"]) for outcome in outcomes]
        # The two runs really overlapped in time.
        assert max(s.start_time for s in stats) < min(s.end_time for s in stats)
        for asset_key in PER_SHARD_ASSETS:
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[SHARD]), limit=10
            ).records
            assert {record.run_id for record in records} == {o["run_id"] for o in outcomes}
            versions = {
                record.asset_materialization.tags["dagster/data_version"] for record in records
            }
            assert len(versions) == 1, asset_key  # both runs produced the same content
            name = asset_key.to_user_string()
            if name in ASSET_SCHEMAS:  # raw_captions' version is the shard file's hash
                # Parquet renames list items ("item" -> "element"): cast back before hashing.
                stored = pq.read_table(layout.partition_file(name, SHARD))
                table = stored.cast(ASSET_SCHEMAS[name]).replace_schema_metadata(
                    stored.schema.metadata
                )
                assert versions == {table_fingerprint(table)}, name
    # Every cache chunk is a whole Parquet file; no writer left a temp file behind.
    chunks = sorted(layout.paraphrase_cache_dir.rglob("chunk-*.parquet"))
    assert chunks and all(pq.read_table(chunk).num_rows > 0 for chunk in chunks)
    assert temp_files(layout.root) == []
