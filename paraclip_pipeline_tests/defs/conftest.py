"""A whole pipeline on two tiny shards, in a temporary storage root and Dagster instance."""

import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml

from paraclip_pipeline.defs.partitions import caption_shards
from paraclip_pipeline.paraphrase import engine
from paraclip_pipeline.settings import REPO_ROOT, Settings
from paraclip_pipeline_tests.defs.support import (
    SHARD_CAPTIONS,
    TINY_TRAINING,
    CallCounter,
    Pipeline,
    write_tiny_shards,
)
from paraclip_pipeline_tests.evaluation.public.support import write_public_fixture


@pytest.fixture
def pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    shards = tmp_path / "shards"
    write_tiny_shards(shards)
    rules_path = tmp_path / "filter_rules.yaml"
    shutil.copy(REPO_ROOT / "data" / "filter_rules.yaml", rules_path)
    train_path = tmp_path / "train.yaml"
    train_path.write_text(yaml.safe_dump(TINY_TRAINING), encoding="utf-8")
    settings = Settings(
        storage_root=tmp_path / "storage",
        shards_location=str(shards),
        image_root=None,
        filter_rules_path=rules_path,
        train_config_path=train_path,
        sts_dir=None,
        model_profile="tiny-random",
        refresh_cron="0 2 * * *",
        eval_data_dir=write_public_fixture(tmp_path / "eval"),
    )
    counter = CallCounter()
    real_build = engine.build_backend

    def counting_build(config):
        backend = real_build(config)
        counter.backends.append(backend)
        return backend

    monkeypatch.setattr(engine, "build_backend", counting_build)
    (tmp_path / "dagster_home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as instance:
        instance.add_dynamic_partitions(caption_shards.name, sorted(SHARD_CAPTIONS))
        yield Pipeline(settings, instance, counter, rules_path)
