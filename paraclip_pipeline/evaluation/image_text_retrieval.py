"""Zero-shot retrieval on the COCO Karpathy test split: R@1/5/10 both directions.

Text-to-image: each of the ~25k captions retrieves among the 5k images, its own image is
relevant. Image-to-text: each image retrieves among all captions, any of its own
captions is relevant.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from paraclip_pipeline.evaluation.coco import CocoImage
from paraclip_pipeline.evaluation.encoders import TextImageEncoder, encode_texts
from paraclip_pipeline.evaluation.metrics import load_metric
from paraclip_pipeline.evaluation.ranking import rank_of_first_relevant
from paraclip_pipeline.evaluation.results import BenchmarkResult

BENCHMARK_NAME = "zero_shot_retrieval"
BENCHMARK_TITLE = "Zero-shot retrieval, COCO Karpathy test"
TASK = "COCO test"
RECALL_KS = (1, 5, 10)


def evaluate_zero_shot_retrieval(
    encoder: TextImageEncoder,
    images: Sequence[CocoImage],
    image_embeddings: np.ndarray,
    batch_size: int = 256,
) -> BenchmarkResult:
    captions = [caption for image in images for caption in image.captions]
    image_of_caption = [row for row, image in enumerate(images) for _ in image.captions]
    captions_of_image: list[list[int]] = [[] for _ in images]
    for caption_row, image_row in enumerate(image_of_caption):
        captions_of_image[image_row].append(caption_row)
    text_embeddings = encode_texts(encoder, captions, batch_size)

    recall = load_metric("recall_at_k")
    text_to_image = rank_of_first_relevant(
        text_embeddings, image_embeddings, [[row] for row in image_of_caption]
    )
    image_to_text = rank_of_first_relevant(image_embeddings, text_embeddings, captions_of_image)
    scores: dict[str, float] = {}
    for direction, ranks in (("t2i", text_to_image), ("i2t", image_to_text)):
        computed = recall.compute(predictions=ranks, k=list(RECALL_KS))
        scores.update({f"{direction} R@{k}": computed[f"R@{k}"] for k in RECALL_KS})
    scores["mean recall"] = float(np.mean([scores[key] for key in list(scores)]))
    result = BenchmarkResult(
        name=BENCHMARK_NAME,
        title=BENCHMARK_TITLE,
        status="ok",
        scores={TASK: scores},
        counts={TASK: len(captions)},
        notes=[f"{len(images)} images, {len(captions)} captions"],
        headline_stems={
            "t2i R@1": "coco_t2i_r1",
            "i2t R@1": "coco_i2t_r1",
            "mean recall": "coco_mean_recall",
        },
    )
    result.set_averages(list(scores))
    return result
