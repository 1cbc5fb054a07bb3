"""Every public-benchmark metric against values computed by hand on tiny inputs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score

from paraclip_pipeline.evaluation.public import metrics


def _at_angles(*degrees: float) -> np.ndarray:
    radians = np.deg2rad(degrees)
    return np.stack([np.cos(radians), np.sin(radians)], axis=1)


def test_caption_group_retrieval_by_hand() -> None:
    """Two images x 3 captions on a circle (degrees): image 0 at 0, 10, 100; image 1 at
    25, 205, 210. Per query, the relevant captions' ranks among the other five:
    q0: 1, 3 -> AP 5/6 (R@1 hit); q1: 1, 3 -> 5/6 (hit); q2: 2, 3 -> 7/12 (miss);
    q3: 4, 5 -> 0.325 (miss); q4: 1, 5 -> 0.7 (hit); q5: 1, 5 -> 0.7 (hit)."""
    hits, precision = metrics.caption_group_retrieval(_at_angles(0, 10, 100, 25, 205, 210), 3)
    np.testing.assert_allclose(hits, [2 / 3, 2 / 3])
    np.testing.assert_allclose(precision, [(5 / 6 + 5 / 6 + 7 / 12) / 3, (0.325 + 0.7 + 0.7) / 3])
    assert 100 * metrics.row_means(precision)[0] == pytest.approx(66.25)


def test_caption_group_ties_count_against_the_model() -> None:
    """A constant encoder: every caption ties, so the 3 irrelevant ones rank first."""
    hits, precision = metrics.caption_group_retrieval(np.ones((6, 4)) / 2, 3)
    np.testing.assert_allclose(hits, [0, 0])
    np.testing.assert_allclose(precision, [(1 / 4 + 2 / 5) / 2] * 2)


def test_caption_group_rank_similarity_by_hand() -> None:
    """Caption 3 of images 0-3 at 0, 90, 180, 270 degrees. Image 0's caption 1 (40)
    ranks the other images' caption 3 as [1, 3], caption 2 (130) as [1, 2]:
    JS@2 = 1/3, AO@2 = (1 + 1/2) / 2. Images 1-3 have captions 1 == 2: AO = JS = 1."""
    angles = [40, 130, 0, 95, 95, 90, 185, 185, 180, 275, 275, 270]
    ao, js, used = metrics.caption_group_rank_similarity(_at_angles(*angles), 3, 2)
    assert used == 2
    np.testing.assert_allclose(ao, [0.75, 1, 1, 1])
    np.testing.assert_allclose(js, [1 / 3, 1, 1, 1])
    _, _, capped = metrics.caption_group_rank_similarity(_at_angles(*angles), 3, 10)
    assert capped == 3  # a gallery of the 3 other images


def test_sugarcrepe_hit_needs_to_beat_both_negative_similarities() -> None:
    caption = _at_angles(0, 0, 0)
    caption2 = _at_angles(10, 10, 30)
    negative = _at_angles(-20, 15, 5)
    # item 0: cos10 > cos20 and > cos30: hit; item 1: sim(c2, neg) = cos5 > cos10: miss;
    # item 2: sim(c, neg) = cos5 > cos30: miss.
    np.testing.assert_array_equal(metrics.sugarcrepe_hits(caption, caption2, negative), [1, 0, 0])
    same = _at_angles(0)
    assert metrics.sugarcrepe_hits(same, same, _at_angles(1))[0] == 1  # caption2 == caption


def test_average_precision_by_hand_and_with_ties() -> None:
    # positives at ranks 1 and 3: (1/1 + 2/3) / 2
    assert metrics.average_precision(np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, 0, 1, 0]))[
        0
    ] == pytest.approx(5 / 6)
    # the positive ties with a negative: it gets the precision at the end of the tie, 1/3
    assert metrics.average_precision(np.array([0.9, 0.5, 0.5]), np.array([0, 1, 0]))[
        0
    ] == pytest.approx(1 / 3)
    rng = np.random.default_rng(0)
    scores = np.round(rng.random((5, 40)), 1)  # many ties
    labels = rng.random((5, 40)) < 0.4
    expected = [average_precision_score(y, s) for s, y in zip(scores, labels, strict=True)]
    np.testing.assert_allclose(metrics.average_precision(scores, labels), expected)


def test_spearman_by_hand_and_against_scipy() -> None:
    # one swapped pair: 1 - 6 * 2 / (4 * 15) = 0.8
    assert metrics.spearman(np.array([1, 2, 3, 4.0]), np.array([1, 3, 2, 4.0]))[0] == pytest.approx(
        0.8
    )
    rng = np.random.default_rng(1)
    predictions, gold = rng.random((3, 30)), np.round(rng.random((3, 30)) * 5)
    expected = [spearmanr(p, g).statistic for p, g in zip(predictions, gold, strict=True)]
    np.testing.assert_allclose(metrics.spearman(predictions, gold), expected)
