"""Metrics of the public benchmarks as plain numpy, per item or per resample row.

Why not ``evaluate`` metric modules like ``metrics/``: every metric here is computed
once on the data and again on 1,000 bootstrap resamples, so each takes (B, n) arrays and
returns B values in one vectorised call; an ``evaluate.Metric`` goes through per-row
Python lists and Arrow features, far too slow for that. The rank-similarity metric
(AO@k / JS@k) is the existing ``metrics/rank_similarity`` module, reused, not rewritten.

Ties count against the model everywhere (a constant encoder earns nothing).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from paraclip_pipeline.evaluation.metrics import load_metric
from paraclip_pipeline.evaluation.ranking import top_k

# Bounds the (queries, gallery, relevant) comparison tensor of caption retrieval (~16M).
_ELEMENTS_PER_BLOCK = 1 << 24


def caption_group_retrieval(
    embeddings: np.ndarray, group_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-image R@1 and average precision of caption-to-caption retrieval.

    Query = one caption; relevant = the other ``group_size - 1`` captions of its image;
    gallery = every other caption. The j-th best relevant item ranks at j plus the
    number of irrelevant captions scoring at least as high; AP = mean_j j / rank_j;
    R@1 = 1 when no irrelevant caption reaches the best relevant one. Each image's value
    is the mean over its ``group_size`` queries (images are the bootstrap's unit).
    """
    count = len(embeddings)
    if count % group_size or count // group_size < 2:
        raise ValueError(f"{count} captions do not form >= 2 groups of {group_size}")
    relevant_count = group_size - 1
    offsets = np.arange(group_size)
    hits = np.empty(count)
    precision = np.empty(count)
    block = max(1, _ELEMENTS_PER_BLOCK // (count * relevant_count))
    for start in range(0, count, block):
        queries = np.arange(start, min(start + block, count))
        rows = np.arange(len(queries))
        similarities = embeddings[queries] @ embeddings.T
        members = (queries // group_size * group_size)[:, None] + offsets[None, :]
        relevant = members[members != queries[:, None]].reshape(len(queries), relevant_count)
        relevant_scores = -np.sort(-np.take_along_axis(similarities, relevant, axis=1), axis=1)
        similarities[rows, queries] = -np.inf  # the query itself is not in the gallery
        np.put_along_axis(similarities, relevant, -np.inf, axis=1)
        above = (similarities[:, :, None] >= relevant_scores[:, None, :]).sum(axis=1)
        ranks = np.arange(1, group_size) + above
        hits[queries] = above[:, 0] == 0
        precision[queries] = (np.arange(1, group_size) / ranks).mean(axis=1)
    images = count // group_size
    return (
        hits.reshape(images, group_size).mean(axis=1),
        precision.reshape(images, group_size).mean(axis=1),
    )


def _top_k_without_own(queries: np.ndarray, gallery: np.ndarray, k: int) -> np.ndarray:
    """Top-k gallery rows of query i, leaving out gallery row i (its own image)."""
    lists = top_k(queries, gallery, k + 1)
    keep = lists != np.arange(len(queries))[:, None]
    keep[keep.all(axis=1), -1] = False
    return lists[keep].reshape(len(queries), k)


def caption_group_rank_similarity(
    embeddings: np.ndarray, group_size: int, k: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-image AO@k and JS@k between the rankings of captions 1 and 2 of each image.

    The gallery is caption 3 of every *other* image, so the two human captions of one
    image act as an original and a paraphrased query (the paper's rank similarity with
    human paraphrases). Returns the values and the k used (capped at images - 1).
    """
    images = len(embeddings) // group_size
    if group_size < 3 or images < 2:
        raise ValueError("rank similarity needs >= 3 captions per image and >= 2 images")
    by_image = embeddings.reshape(images, group_size, -1)
    used = min(k, images - 1)
    first = _top_k_without_own(by_image[:, 0], by_image[:, 2], used)
    second = _top_k_without_own(by_image[:, 1], by_image[:, 2], used)
    computed = load_metric("rank_similarity").compute(predictions=second, references=first)
    return np.asarray(computed["ao_per_query"]), np.asarray(computed["js_per_query"]), used


def sugarcrepe_hits(caption: np.ndarray, caption2: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """1.0 where sim(caption, caption2) beats both sim(caption, neg) and sim(caption2, neg)."""
    positive = np.einsum("ij,ij->i", caption, caption2)
    against_first = np.einsum("ij,ij->i", caption, negative)
    against_second = np.einsum("ij,ij->i", caption2, negative)
    return ((positive > against_first) & (positive > against_second)).astype(np.float64)


def row_means(values: np.ndarray) -> np.ndarray:
    """The statistic of per-item metrics (R@1, mAP, AO, JS, accuracy): a mean per row."""
    return np.atleast_2d(values).mean(axis=1)


def average_precision(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Average precision of each row, equal to scikit-learn's ``average_precision_score``.

    AP = sum over thresholds of (recall gain) x (precision at the threshold); tied scores
    form one threshold, so each positive in a tie takes the precision at the end of it.
    A row without positives gives NaN.
    """
    scores, labels = np.atleast_2d(scores), np.atleast_2d(labels)
    order = np.argsort(-scores, axis=1, kind="stable")
    ranked = np.take_along_axis(scores, order, axis=1)
    positive = np.take_along_axis(labels, order, axis=1).astype(np.float64)
    true_positives = np.cumsum(positive, axis=1)
    width = ranked.shape[1]
    ends_tie = np.ones(ranked.shape, dtype=bool)
    ends_tie[:, :-1] = ranked[:, :-1] != ranked[:, 1:]
    position = np.broadcast_to(np.arange(width), ranked.shape)
    tie_end = np.minimum.accumulate(np.where(ends_tie, position, width)[:, ::-1], axis=1)[:, ::-1]
    precision = np.take_along_axis(true_positives, tie_end, axis=1) / (tie_end + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (positive * precision).sum(axis=1) / positive.sum(axis=1)


def spearman(predictions: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row (average ranks for ties, as ``scipy.stats.spearmanr``)."""
    first = rankdata(np.atleast_2d(predictions), axis=1)
    second = rankdata(np.atleast_2d(gold), axis=1)
    first -= first.mean(axis=1, keepdims=True)
    second -= second.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (first * second).sum(axis=1) / np.sqrt(
            (first**2).sum(axis=1) * (second**2).sum(axis=1)
        )
