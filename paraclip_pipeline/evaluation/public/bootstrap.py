"""Paired bootstrap intervals for the delta between a model and its baseline.

Both models are scored on the *same* resampled items (queries, pairs or images), so
the interval reflects how consistently the model beats the baseline item by item, not
the spread of each score alone (Koehn 2004; Efron & Tibshirani 1993, percentile method).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 0
CONFIDENCE = 0.95
# Bounds each block of resampled index rows (and the arrays gathered with them), ~8M.
_ELEMENTS_PER_BLOCK = 1 << 23

# (B, n) arrays, one per input, -> B statistic values.
Statistic = Callable[..., np.ndarray]


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    @property
    def contains_zero(self) -> bool:
        return self.low <= 0.0 <= self.high


def point_value(statistic: Statistic, arrays: Sequence[np.ndarray]) -> float:
    return float(statistic(*(np.asarray(array)[None, :] for array in arrays))[0])


def paired_bootstrap_interval(
    statistic: Statistic,
    model: Sequence[np.ndarray],
    baseline: Sequence[np.ndarray],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = CONFIDENCE,
) -> Interval:
    """Percentile interval of statistic(model) - statistic(baseline) over item resamples.

    ``model`` and ``baseline`` hold per-item arrays of one length n (the inputs of
    ``statistic``, e.g. scores and labels); resample b draws n item indices with
    replacement and applies them to both sides. Resamples whose statistic is undefined
    (NaN, e.g. no positive label drawn) are left out of the percentiles.
    """
    return seed_averaged_bootstrap_interval(
        statistic, [model], baseline, resamples=resamples, seed=seed, confidence=confidence
    )


def seed_averaged_bootstrap_interval(
    statistic: Statistic,
    models: Sequence[Sequence[np.ndarray]],
    baseline: Sequence[np.ndarray],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = CONFIDENCE,
) -> Interval:
    """Interval of mean over seeds of statistic(model_s) - statistic(baseline).

    ``models`` holds one model's per-item arrays per training seed. Each resample draws
    the items once and scores every seed's model and the baseline on those same items,
    then averages the seeds' scores: the interval covers the item sampling of the
    benchmark for the seed-averaged model (what the report's "model" column shows), not
    the seed-to-seed spread, which the report gives beside it. With one seed this is
    exactly ``paired_bootstrap_interval`` (the same draws, the same values).
    """
    if not models:
        raise ValueError("at least one model is needed")
    lengths = {len(array) for array in (*(a for m in models for a in m), *baseline)}
    if len(lengths) != 1 or 0 in lengths:
        raise ValueError(f"every per-item array must share one non-zero length, got {lengths}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    (count,) = lengths
    rng = np.random.default_rng(seed)
    block = max(1, _ELEMENTS_PER_BLOCK // (count * len(models)))
    deltas = []
    for start in range(0, resamples, block):
        rows = rng.integers(0, count, size=(min(block, resamples - start), count))
        per_seed = [statistic(*(np.asarray(array)[rows] for array in model)) for model in models]
        deltas.append(
            np.mean(per_seed, axis=0) - statistic(*(np.asarray(array)[rows] for array in baseline))
        )
    values = np.concatenate(deltas)
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.nanpercentile(values, [tail, 100 - tail])
    return Interval(float(low), float(high))
