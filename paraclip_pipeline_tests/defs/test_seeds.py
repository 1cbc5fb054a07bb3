"""Several training seeds: one checkpoint each, and the report scores their mean."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
import yaml
from safetensors.numpy import load_file

from paraclip_pipeline.defs import training
from paraclip_pipeline.defs.resources import (
    ClipModelResource,
    RayResource,
    StorageResource,
    TrainingResource,
)
from paraclip_pipeline.defs.training import (
    CHECKPOINT_DIR_KEY,
    SEED_CHECKPOINTS_KEY,
    text_encoder_checkpoint,
)
from paraclip_pipeline.modeling.checkpoint_format import read_manifest
from paraclip_pipeline.modeling.factory import load_clip
from paraclip_pipeline.modeling.profiles import get_profile
from paraclip_pipeline.storage import ParquetTable, write_parquet_atomic
from paraclip_pipeline_tests.training.support import make_embeddings, make_pairs

TINY = {"lr": 1e-3, "warmup_steps": 1, "batch_size": 8, "max_steps": 2, "log_every_steps": 1}


def _train(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **config: object
) -> dg.MaterializeResult:
    config_path = tmp_path / "train.yaml"
    config_path.write_text(yaml.safe_dump({**TINY, **config}))
    clip = load_clip(get_profile("tiny-random"))
    table = make_pairs(16)
    # Training gets each shard's file, as the IO manager hands it over.
    pairs = write_parquet_atomic(table, tmp_path / "pairs.parquet")
    embeddings = write_parquet_atomic(
        make_embeddings(table, clip.model_id, clip.embed_dim), tmp_path / "embeddings.parquet"
    )
    # Invoked directly, outside a run: no filtered_pairs check history to select shards by
    # (eligibility is tested in test_pipeline_e2e), so every given shard trains.
    monkeypatch.setattr(training, "select_trainable", lambda _context, tables: (dict(tables), []))
    with dg.instance_for_test() as instance:
        context = dg.build_asset_context(instance=instance)
        (result,) = text_encoder_checkpoint(  # type: ignore[misc]
            context,
            filtered_pairs={"s0": ParquetTable(str(pairs))},
            image_embeddings={"s0": ParquetTable(str(embeddings))},
            clip_model=ClipModelResource(profile="tiny-random"),
            training=TrainingResource(config_path=str(config_path)),
            storage=StorageResource(root=str(tmp_path / "storage")),
            ray=RayResource(),
        )
        return result


def _weights(checkpoint_dir: Path) -> dict:
    return load_file(checkpoint_dir / read_manifest(checkpoint_dir)["weights_file"])


def test_two_seeds_give_two_checkpoints_the_first_primary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _train(tmp_path, monkeypatch, seeds=[3, 5])
    metadata = {key: getattr(value, "value", value) for key, value in result.metadata.items()}
    entries = metadata[SEED_CHECKPOINTS_KEY]
    assert [entry["seed"] for entry in entries] == [3, 5]
    dirs = [Path(entry["checkpoint_dir"]) for entry in entries]
    assert Path(str(metadata[CHECKPOINT_DIR_KEY])) == dirs[0]
    assert dirs[1].name == f"{dirs[0].name}-seed5"
    manifests = [read_manifest(path) for path in dirs]
    assert [m["config"]["seed"] for m in manifests] == [3, 5]
    assert all(m["config"]["seeds"] == [3, 5] for m in manifests)
    assert manifests[0]["run_fingerprint"] != manifests[1]["run_fingerprint"]
    first, second = (_weights(path) for path in dirs)
    assert any((first[name] != second[name]).any() for name in first)  # other seed, other run


def test_one_seed_writes_one_checkpoint_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _train(tmp_path, monkeypatch, seed=3)
    assert SEED_CHECKPOINTS_KEY not in result.metadata
    checkpoint_dir = Path(str(result.metadata[CHECKPOINT_DIR_KEY].value))
    assert [path.name for path in checkpoint_dir.parent.iterdir()] == [checkpoint_dir.name]
    assert json.loads(json.dumps(read_manifest(checkpoint_dir)["config"]))["seeds"] is None


def test_seeds_are_validated() -> None:
    from paraclip_pipeline.training.config import TrainConfig

    with pytest.raises(ValueError, match=r"seeds must be distinct, got \[1, 1\]"):
        TrainConfig(seeds=(1, 1))
    with pytest.raises(ValueError, match="at least 1 item"):
        TrainConfig(seeds=())
    assert TrainConfig(seed=4).run_seeds == (4,)
    assert TrainConfig(seed=4, seeds=(2, 1)).run_seeds == (2, 1)
    with pytest.raises(ValueError, match=r"seed 7 is not one of \[2, 1\]"):
        TrainConfig(seeds=(2, 1)).for_seed(7)


def test_the_report_reads_every_seed_checkpoint_primary_first(tmp_path: Path) -> None:
    from paraclip_pipeline.asset_names import TEXT_ENCODER_CHECKPOINT
    from paraclip_pipeline.defs.reports import _latest_checkpoints

    entries = [
        {"seed": 3, "checkpoint_dir": "/c/run"},
        {"seed": 5, "checkpoint_dir": "/c/run-seed5"},
    ]

    @dg.asset(name=TEXT_ENCODER_CHECKPOINT)
    def fake_checkpoint() -> dg.MaterializeResult:
        return dg.MaterializeResult(
            metadata={
                CHECKPOINT_DIR_KEY: dg.MetadataValue.path("/c/run"),
                SEED_CHECKPOINTS_KEY: dg.MetadataValue.json(entries),
            }
        )

    with dg.instance_for_test() as instance:
        dg.materialize([fake_checkpoint], instance=instance)
        assert _latest_checkpoints(instance) == [(3, Path("/c/run")), (5, Path("/c/run-seed5"))]
