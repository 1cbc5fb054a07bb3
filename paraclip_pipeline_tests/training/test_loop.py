"""Training on the tiny-random profile: what moves, what stays, resume, checkpoint files."""

from __future__ import annotations

from pathlib import Path

import open_clip
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import torch
from safetensors.torch import load_file

from paraclip_pipeline import schema
from paraclip_pipeline.modeling.checkpoint_format import (
    WEIGHTS_FILE,
    CheckpointError,
    verify_checkpoint,
)
from paraclip_pipeline.modeling.factory import load_clip
from paraclip_pipeline.modeling.profiles import MODEL_CONFIGS_DIR
from paraclip_pipeline.training.checkpoint import state_root_for
from paraclip_pipeline.training.config import TrainConfig
from paraclip_pipeline.training.data import TrainingDataError
from paraclip_pipeline.training.loop import TrainResult
from paraclip_pipeline_tests.training.support import make_embeddings
from paraclip_pipeline_tests.training.tiny_runs import (
    PROFILE,
    assert_same_training,
    stop_at_step,
    train_tiny,
)

INPUTS = [{"partition": "s0", "rows": 26}]


def _train(tiny_data, config: TrainConfig, output_dir: Path, **kwargs) -> TrainResult:
    return train_tiny(tiny_data, config, output_dir, INPUTS, **kwargs)


def test_only_text_tower_changes_and_image_tower_never_runs(
    tiny_data, tiny_config, tiny_clip, tmp_path, monkeypatch
) -> None:
    def refuse(*_args, **_kwargs):
        raise AssertionError("the image tower ran during training")

    monkeypatch.setattr(open_clip.model.VisionTransformer, "forward", refuse)
    result = _train(tiny_data, tiny_config, tmp_path / "run")
    trained = load_file(result.checkpoint_dir / WEIGHTS_FILE)
    before = tiny_clip.model.state_dict()
    visual = [name for name in before if name.startswith("visual.")]
    assert visual and all(torch.equal(trained[name], before[name]) for name in visual)
    assert not torch.equal(trained["text_projection"], before["text_projection"])
    assert not torch.equal(trained["token_embedding.weight"], before["token_embedding.weight"])
    assert result.manifest["inputs"] == INPUTS
    assert result.trained_caption_ids == [f"c{i:03d}" for i in range(24)]  # test excluded
    assert result.manifest["duplicate_captions_dropped"] == 0
    assert [row["step"] for row in result.loss_history] == list(range(1, 7))
    assert {
        "loss_l1",
        "loss_total",
        "steps_per_s",
        "samples_per_s",
        "peak_memory_mb",
        "wall_s",
    } <= set(result.metrics)
    assert not state_root_for(result.checkpoint_dir).exists()


def test_resume_after_interruption_gives_identical_weights(
    tiny_data, tiny_config, tmp_path
) -> None:
    reference = _train(tiny_data, tiny_config, tmp_path / "uninterrupted")
    with pytest.raises(KeyboardInterrupt):
        _train(tiny_data, tiny_config, tmp_path / "interrupted", log=stop_at_step(4))
    assert (state_root_for(tmp_path / "interrupted") / "step-00000003").is_dir()
    messages: list[str] = []
    resumed = _train(tiny_data, tiny_config, tmp_path / "interrupted", log=messages.append)
    assert any(m.startswith("resuming from") and "step 3/6" in m for m in messages)
    assert_same_training(reference, resumed)


def test_checkpoint_loads_with_plain_open_clip(tiny_data, tiny_config, tmp_path) -> None:
    result = _train(tiny_data, tiny_config, tmp_path / "run")
    saved = load_file(result.checkpoint_dir / WEIGHTS_FILE)
    open_clip.add_model_config(MODEL_CONFIGS_DIR)
    by_name, _, _ = open_clip.create_model_and_transforms(
        PROFILE.open_clip_model, pretrained=str(result.checkpoint_dir / WEIGHTS_FILE)
    )
    from_dir, _, _ = open_clip.create_model_and_transforms(f"local-dir:{result.checkpoint_dir}")
    for model in (by_name, from_dir):
        state = model.state_dict()
        assert all(torch.equal(state[name], saved[name]) for name in saved)
    reloaded = load_clip(PROFILE, checkpoint=result.checkpoint_dir)
    assert torch.equal(reloaded.model.state_dict()["text_projection"], saved["text_projection"])


def test_tampered_checkpoint_is_refused(tiny_data, tiny_config, tmp_path) -> None:
    result = _train(tiny_data, tiny_config, tmp_path / "run")
    weights = result.checkpoint_dir / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        verify_checkpoint(result.checkpoint_dir)
    with pytest.raises(CheckpointError, match=WEIGHTS_FILE):
        load_clip(PROFILE, checkpoint=result.checkpoint_dir)


def test_rerun_reuses_checkpoint_and_other_run_is_refused(tiny_data, tiny_config, tmp_path) -> None:
    first = _train(tiny_data, tiny_config, tmp_path / "run")
    again = _train(tiny_data, tiny_config, tmp_path / "run")
    assert again.manifest["weights_sha256"] == first.manifest["weights_sha256"]
    other = tiny_config.model_copy(update={"lr": 5e-4})
    with pytest.raises(CheckpointError, match="different run"):
        _train(tiny_data, other, tmp_path / "run")


def test_embeddings_of_another_image_tower_are_refused(tiny_data, tiny_config, tmp_path) -> None:
    pairs, _ = tiny_data
    foreign = make_embeddings(pairs, "ViT-B-32/laion2b_s34b_b79k@0123456789abcdef", 32)
    with pytest.raises(TrainingDataError, match="recompute image_embeddings"):
        _train((pairs, foreign), tiny_config, tmp_path / "run")


def test_null_paraphrase_names_the_row(tiny_data, tiny_config, tmp_path) -> None:
    pairs, embeddings = tiny_data
    broken = pairs.set_column(
        pairs.schema.get_field_index(schema.PARAPHRASE_2),
        pa.field(schema.PARAPHRASE_2, pa.string()),
        pc.if_else(
            pc.equal(pairs.column(schema.CAPTION_ID), "c005"),
            None,
            pairs.column(schema.PARAPHRASE_2),
        ),
    )
    with pytest.raises(TrainingDataError, match=r"'paraphrase_2'.*c005"):
        _train((broken, embeddings), tiny_config, tmp_path / "run")


def test_bf16_accumulation_and_fixed_temperature(
    tiny_data, tiny_config, tiny_clip, tmp_path
) -> None:
    config = tiny_config.model_copy(
        update={"bf16": True, "grad_accum_steps": 2, "batch_size": 4, "fixed_temperature": 0.1}
    )
    result = _train(tiny_data, config, tmp_path / "run")
    assert result.metrics["micro_batch_size"] == 4.0 and len(result.loss_history) == 6
    assert all(row["total"] > 0 for row in result.loss_history)
    trained = load_file(result.checkpoint_dir / WEIGHTS_FILE)
    assert torch.equal(trained["logit_scale"], tiny_clip.model.state_dict()["logit_scale"])


SELECTION = {
    "chosen_on": ["coco_karpathy/val/captions.txt", "paws/dev.tsv"],
    "table": "docs/training.md#levers",
}


def test_selection_is_validated_recorded_and_not_part_of_the_run(
    tiny_data, tiny_config, tmp_path
) -> None:
    config = tiny_config.model_copy(update={"max_steps": 1})
    chosen = TrainConfig.model_validate({**config.model_dump(), "selection": SELECTION})
    result = _train(tiny_data, chosen, tmp_path / "run")
    assert result.manifest["selection"] == {**SELECTION, "note": None}
    # Same fingerprint without the block: the rerun reuses the checkpoint, not refuses it.
    again = _train(tiny_data, config, tmp_path / "run")
    assert again.manifest["run_fingerprint"] == result.manifest["run_fingerprint"]
    for tuned_on_test in ("stsb/sts-test.csv", "paws/test.tsv", "mrpc/msr_paraphrase_test.txt"):
        with pytest.raises(ValueError, match="not test data"):
            TrainConfig.model_validate({"selection": {"chosen_on": [tuned_on_test]}})
    with pytest.raises(ValueError, match="chosen_on"):
        TrainConfig.model_validate({"selection": {"chosen_on": []}})
