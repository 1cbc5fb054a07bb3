"""L1 is switched off, with the reason recorded, when its image side is random."""

from __future__ import annotations

from paraclip_pipeline.training.config import LossWeights, TrainConfig
from paraclip_pipeline.training.loss_plan import (
    OFF_NO_IMAGES,
    OFF_RANDOM_TOWER,
    OFF_WEIGHT,
    ON,
    plan_losses,
)
from paraclip_pipeline_tests.training.test_loop import _train

OWN = "paraclip-tiny-random/random-seed0@abc"
PAPER_WEIGHTS = LossWeights()


def _plan(weights: LossWeights = PAPER_WEIGHTS, **overrides):
    arguments = {
        "pretrained_image_tower": False,
        "own_image_model_id": OWN,
        "image_embedding_models": frozenset({OWN}),
        "rows_with_image": 10,
        **overrides,
    }
    return plan_losses(weights, **arguments)


def test_random_tower_without_precomputed_embeddings_turns_l1_off() -> None:
    plan = _plan()
    assert plan.reasons == {"L1": OFF_RANDOM_TOWER, "L2": ON, "L3": ON}
    assert plan.weights.image_paraphrase2 == 0.0 and plan.weights.caption_paraphrase1 == 1.0


def test_pretrained_tower_or_precomputed_embeddings_keep_l1_on() -> None:
    assert _plan(pretrained_image_tower=True).reasons["L1"] == ON
    precomputed = _plan(image_embedding_models=frozenset({OWN, "ViT-L-14:openai"}))
    assert precomputed.reasons["L1"] == ON and precomputed.weights.image_paraphrase2 == 1.0


def test_other_reasons_for_a_term_to_be_off() -> None:
    assert _plan(rows_with_image=0, pretrained_image_tower=True).reasons["L1"] == OFF_NO_IMAGES
    no_l3 = LossWeights(paraphrase1_paraphrase2=0.0)
    assert _plan(no_l3, pretrained_image_tower=True).reasons == {
        "L1": ON,
        "L2": ON,
        "L3": OFF_WEIGHT,
    }


def test_the_manifest_records_the_losses_of_a_random_tower_run(
    tiny_data, tiny_config: TrainConfig, tmp_path
) -> None:
    result = _train(tiny_data, tiny_config.model_copy(update={"max_steps": 1}), tmp_path / "r")
    assert result.manifest["losses"] == {"L1": OFF_RANDOM_TOWER, "L2": ON, "L3": ON}
    # L1 is still measured (and logged), it only does not count towards the total.
    terms = result.loss_history[0]
    assert terms["l1"] > 0 and abs(terms["total"] - terms["l2"] - terms["l3"]) < 1e-4
