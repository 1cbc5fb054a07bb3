"""Which ParaCLIP losses a run uses, and why: decided per run, recorded in the manifest.

L1(image, T'') pulls T'' towards an image embedding. From a random image tower (the
offline profile has no pretrained image weights) that embedding is a random feature of
the pixels, so L1 would teach the text tower to predict noise; issue 12 measured the
offline fine-tune below its starting encoder. L1 is therefore off when the profile's image
tower is not pretrained and every image embedding came from that tower (none were
precomputed by a real image model and shipped in the shards).
"""

from __future__ import annotations

from dataclasses import dataclass

from paraclip_pipeline.training.config import LossWeights

ON = "on"
OFF_WEIGHT = "off: weight 0 in the training config"
OFF_RANDOM_TOWER = "off: random image tower, no precomputed embeddings"
OFF_NO_IMAGES = "off: no train row has an image embedding"


@dataclass(frozen=True)
class LossPlan:
    weights: LossWeights  # the configured weights, with the switched-off terms at 0
    reasons: dict[str, str]  # L1 / L2 / L3 -> "on" or "off: why"


def plan_losses(
    configured: LossWeights,
    *,
    pretrained_image_tower: bool,
    own_image_model_id: str,
    image_embedding_models: frozenset[str],
    rows_with_image: int,
) -> LossPlan:
    """The run's loss weights and the reason for each term being on or off."""
    l1 = ON
    if configured.image_paraphrase2 == 0:
        l1 = OFF_WEIGHT
    elif rows_with_image == 0:
        l1 = OFF_NO_IMAGES
    elif not pretrained_image_tower and image_embedding_models <= {own_image_model_id}:
        l1 = OFF_RANDOM_TOWER
    reasons = {
        "L1": l1,
        "L2": ON if configured.caption_paraphrase1 > 0 else OFF_WEIGHT,
        "L3": ON if configured.paraphrase1_paraphrase2 > 0 else OFF_WEIGHT,
    }
    weights = configured if l1 == ON else configured.model_copy(update={"image_paraphrase2": 0.0})
    return LossPlan(weights=weights, reasons=reasons)
