"""Spearman rank correlation as a local `evaluate` metric (the hub one cannot load offline)."""

import datasets
import evaluate
import numpy as np
from scipy.stats import spearmanr

_DESCRIPTION = """
Spearman's rank correlation between predicted similarities and gold scores, the
statistic SentEval and SimCSE report for the STS tasks.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of float): model similarities, e.g. cosine of two sentence embeddings.
    references (list of float): gold similarity scores, same length.
Returns:
    spearman (float): correlation in [-1, 1]; NaN when either side is constant.
    count (int): number of pairs.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Spearman(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("float64"), "references": datasets.Value("float64")}
            ),
        )

    def _compute(self, predictions: list[float], references: list[float]) -> dict[str, float]:
        if len(predictions) < 2:
            raise ValueError(f"Spearman needs at least 2 pairs, got {len(predictions)}")
        result = spearmanr(np.asarray(predictions), np.asarray(references))
        return {"spearman": float(result.statistic), "count": len(predictions)}
