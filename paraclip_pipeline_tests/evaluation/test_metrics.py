"""The repository's `evaluate` metric modules: offline loading and hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from paraclip_pipeline.evaluation.metrics import load_metric
from paraclip_pipeline.evaluation.ranking import rank_of_first_relevant, top_k


def test_spearman_metric_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    predictions, references = rng.random(40), rng.random(40)
    computed = load_metric("spearman").compute(predictions=predictions, references=references)
    assert computed["spearman"] == pytest.approx(spearmanr(predictions, references).statistic)
    assert computed["count"] == 40


@pytest.mark.parametrize(
    ("original", "paraphrased", "ao", "js"),
    [
        ([1, 2, 3], [2, 1, 4], (0 + 2 / 2 + 2 / 3) / 3, 2 / 4),
        ([1, 2, 3, 4], [4, 3, 2, 1], (0 + 0 + 2 / 3 + 4 / 4) / 4, 1.0),
        ([1, 2, 3], [1, 2, 3], 1.0, 1.0),
        ([1, 2, 3], [4, 5, 6], 0.0, 0.0),
        ([7, 8, 9], [7, 5, 6], (1 + 1 / 2 + 1 / 3) / 3, 1 / 5),
    ],
)
def test_rank_similarity_by_hand(
    original: list[int], paraphrased: list[int], ao: float, js: float
) -> None:
    computed = load_metric("rank_similarity").compute(
        predictions=[paraphrased], references=[original]
    )
    assert computed["ao"] == pytest.approx(ao)
    assert computed["js"] == pytest.approx(js)
    assert computed["k"] == len(original)


def test_rank_similarity_averages_queries_and_rejects_repeats() -> None:
    metric = load_metric("rank_similarity")
    computed = metric.compute(predictions=[[1, 2], [3, 4]], references=[[1, 2], [5, 6]])
    assert computed["ao_per_query"] == [1.0, 0.0]
    assert computed["ao"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="repeats an item"):
        metric.compute(predictions=[[1, 1]], references=[[1, 2]])


def test_recall_at_k_by_hand() -> None:
    computed = load_metric("recall_at_k").compute(predictions=[0, 3, 7, 12], k=[1, 5, 10])
    assert computed == {"R@1": 0.25, "R@5": 0.5, "R@10": 0.75, "count": 4}


def test_top_k_orders_by_similarity_and_breaks_ties_by_index() -> None:
    gallery = np.eye(4, dtype=np.float32)
    queries = np.array([[0.1, 0.9, 0.5, 0.0], [0.5, 0.0, 0.5, 0.5]], dtype=np.float32)
    assert top_k(queries, gallery, 3).tolist() == [[1, 2, 0], [0, 2, 3]]


def test_rank_of_first_relevant_counts_ties_against_the_model() -> None:
    gallery = np.eye(3, dtype=np.float32)
    queries = np.array([[0.2, 0.9, 0.1], [0.5, 0.5, 0.0], [0.3, 0.2, 0.1]], dtype=np.float32)
    ranks = rank_of_first_relevant(queries, gallery, [[1], [1], [2, 1]])
    # query 0: its item is best; query 1: tied with item 0; query 2: best relevant (1) after 0.
    assert ranks.tolist() == [0, 1, 1]
    recall = load_metric("recall_at_k").compute(predictions=ranks, k=[1, 2])
    assert recall["R@1"] == pytest.approx(1 / 3)
    assert recall["R@2"] == 1.0
