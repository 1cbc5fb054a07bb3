"""Paraphrased retrieval: how similar are the rankings of an original and a paraphrased query.

Two variants share the scoring: text-to-image over the COCO test images (with the
paraphrased query set of Cheng et al.), and text-to-text over a gallery of the held-out
captions (offline, from the pipeline's own held-out pairs).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from paraclip_pipeline import schema
from paraclip_pipeline.evaluation.encoders import TextImageEncoder, encode_unique_texts
from paraclip_pipeline.evaluation.errors import BenchmarkDataError
from paraclip_pipeline.evaluation.metrics import load_metric
from paraclip_pipeline.evaluation.ranking import top_k
from paraclip_pipeline.evaluation.results import BenchmarkResult

HELDOUT_NAME = "heldout_rank_similarity"
HELDOUT_TITLE = "Paraphrased retrieval, text-to-text over held-out captions"
COCO_NAME = "coco_rank_similarity"
COCO_TITLE = "Paraphrased retrieval, text-to-image over COCO test images"
# Tasks of the held-out variant: original caption T against each paraphrasing step.
HELDOUT_TASKS = {"T vs T'": schema.PARAPHRASE_1, "T vs T''": schema.PARAPHRASE_2}
HELDOUT_COLUMNS = (schema.TEXT, schema.PARAPHRASE_1, schema.PARAPHRASE_2)


def ao_key(k: int) -> str:
    return f"AO@{k}"


def js_key(k: int) -> str:
    return f"JS@{k}"


def score_rank_similarity(
    original: np.ndarray, paraphrased: np.ndarray, gallery: np.ndarray, ks: Sequence[int]
) -> tuple[dict[str, float], dict[str, list[float]], list[str]]:
    """AO@k and JS@k for each k, per-query values, and notes on any k capped at the gallery.

    Ranked once with the largest k: the top-k' list for k' < k is its prefix.
    """
    notes = []
    capped = {k: min(k, len(gallery)) for k in ks}
    for k, used in capped.items():
        if used < k:
            notes.append(f"gallery holds {len(gallery)} items, so k={k} is scored as k={used}")
    deepest = max(capped.values())
    original_lists = top_k(original, gallery, deepest)
    paraphrased_lists = top_k(paraphrased, gallery, deepest)
    metric = load_metric("rank_similarity")
    scores: dict[str, float] = {}
    per_query: dict[str, list[float]] = {}
    for k, used in capped.items():
        computed = metric.compute(
            predictions=paraphrased_lists[:, :used], references=original_lists[:, :used]
        )
        scores[ao_key(k)], scores[js_key(k)] = computed["ao"], computed["js"]
        per_query[ao_key(k)], per_query[js_key(k)] = (
            computed["ao_per_query"],
            computed["js_per_query"],
        )
    return scores, per_query, notes


def _heldout_texts(pairs: pa.Table) -> dict[str, list[str]]:
    missing = [column for column in HELDOUT_COLUMNS if column not in pairs.column_names]
    if missing:
        raise BenchmarkDataError("heldout_pairs", f"table lacks column(s) {missing}")
    columns = {}
    for column in HELDOUT_COLUMNS:
        values = pairs.column(column).to_pylist()
        bad = next((row for row, value in enumerate(values) if not isinstance(value, str)), None)
        if bad is not None:
            raise BenchmarkDataError(
                "heldout_pairs", "value is null or not a string", row=bad, column=column
            )
        columns[column] = values
    return columns


def evaluate_heldout_rank_similarity(
    encoder: TextImageEncoder, pairs: pa.Table | None, ks: Sequence[int], batch_size: int = 256
) -> BenchmarkResult:
    """Gallery = distinct held-out captions; queries = each caption vs its paraphrase.

    The original caption is itself in the gallery, so its own list starts with it; a
    paraphrase-robust encoder ranks it first for the paraphrase too.
    """
    if pairs is None or pairs.num_rows == 0:
        return BenchmarkResult.absent(HELDOUT_NAME, HELDOUT_TITLE, "no held-out pairs given")
    columns = _heldout_texts(pairs)
    all_texts = [text for values in columns.values() for text in values]
    embeddings, row_of = encode_unique_texts(encoder, all_texts, batch_size)
    gallery_texts = list(dict.fromkeys(columns[schema.TEXT]))
    gallery = embeddings[[row_of[text] for text in gallery_texts]]
    original = embeddings[[row_of[text] for text in columns[schema.TEXT]]]
    result = BenchmarkResult(name=HELDOUT_NAME, title=HELDOUT_TITLE, status="ok")
    for task, column in HELDOUT_TASKS.items():
        paraphrased = embeddings[[row_of[text] for text in columns[column]]]
        scores, per_query, notes = score_rank_similarity(original, paraphrased, gallery, ks)
        result.scores[task] = scores
        result.counts[task] = pairs.num_rows
        result.distributions.update({f"{task} {key}": values for key, values in per_query.items()})
        result.notes.extend(note for note in notes if note not in result.notes)
    metrics = [key for k in ks for key in (ao_key(k), js_key(k))]
    result.set_averages(metrics)
    result.headline_stems = {key: key.lower().replace("@", "") for key in metrics}
    return result


def evaluate_coco_rank_similarity(
    encoder: TextImageEncoder,
    originals: Sequence[str],
    paraphrases: Sequence[str],
    image_embeddings: np.ndarray,
    ks: Sequence[int],
    batch_size: int = 256,
) -> BenchmarkResult:
    """Text-to-image: rank the gallery images with each original and paraphrased query."""
    embeddings, row_of = encode_unique_texts(encoder, [*originals, *paraphrases], batch_size)
    original = embeddings[[row_of[text] for text in originals]]
    paraphrased = embeddings[[row_of[text] for text in paraphrases]]
    scores, per_query, notes = score_rank_similarity(original, paraphrased, image_embeddings, ks)
    task = "caption vs paraphrase"
    metrics = [key for k in ks for key in (ao_key(k), js_key(k))]
    result = BenchmarkResult(
        name=COCO_NAME,
        title=COCO_TITLE,
        status="ok",
        scores={task: scores},
        counts={task: len(originals)},
        notes=notes,
        headline_stems={key: "coco_" + key.lower().replace("@", "") for key in metrics},
        distributions={f"{task} {key}": values for key, values in per_query.items()},
    )
    result.set_averages(metrics)
    return result
