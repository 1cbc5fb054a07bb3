"""Paired bootstrap intervals: identical models, a known shift, no shift, reproducibility."""

from __future__ import annotations

import numpy as np

from paraclip_pipeline.evaluation.public import metrics
from paraclip_pipeline.evaluation.public.bootstrap import paired_bootstrap_interval, point_value


def test_identical_models_give_a_zero_interval() -> None:
    values = np.random.default_rng(0).random(200)
    interval = paired_bootstrap_interval(metrics.row_means, (values,), (values,))
    assert (interval.low, interval.high) == (0.0, 0.0)
    assert interval.contains_zero


def test_a_known_shift_is_detected_and_contains_the_point_delta() -> None:
    rng = np.random.default_rng(1)
    baseline = rng.random(500)
    model = baseline + 0.05 + rng.normal(0, 0.05, 500)
    interval = paired_bootstrap_interval(metrics.row_means, (model,), (baseline,))
    delta = point_value(metrics.row_means, (model,)) - point_value(metrics.row_means, (baseline,))
    assert interval.low <= delta <= interval.high
    assert interval.low > 0.04 and interval.high < 0.06
    assert not interval.contains_zero


def test_noise_without_shift_contains_zero() -> None:
    rng = np.random.default_rng(2)
    baseline = rng.random(300)
    model = baseline + rng.normal(0, 0.1, 300)
    model -= model.mean() - baseline.mean()
    assert paired_bootstrap_interval(metrics.row_means, (model,), (baseline,)).contains_zero


def test_non_mean_statistics_resample_every_input_together() -> None:
    """AP resamples scores and labels with the same indices; fixed seed, same interval."""
    rng = np.random.default_rng(3)
    labels = rng.random(400) < 0.5
    baseline = rng.random(400)
    model = baseline + 0.3 * labels
    first = paired_bootstrap_interval(
        metrics.average_precision, (model, labels), (baseline, labels), seed=7
    )
    again = paired_bootstrap_interval(
        metrics.average_precision, (model, labels), (baseline, labels), seed=7
    )
    assert first == again
    assert first.low > 0
