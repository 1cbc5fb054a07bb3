"""Recall@k for retrieval as a local `evaluate` metric.

Each query is summarised by the 0-based rank of its best-ranked relevant item (0 means
a relevant item came first); Recall@k is the share of queries with that rank below k.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Recall@k of a retrieval run, from the rank of the first relevant item of every query.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): 0-based rank of the best-ranked relevant item, per query.
    k (list of int): cut-offs, default [1, 5, 10].
Returns:
    "R@{k}" (float) for each k, in [0, 1]; count (int).
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class RecallAtK(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64")}),
        )

    def _compute(self, predictions: list[int], k: list[int] | None = None) -> dict:
        cutoffs = [1, 5, 10] if k is None else list(k)
        if not predictions:
            raise ValueError("Recall@k needs at least one query")
        if any(cutoff < 1 for cutoff in cutoffs):
            raise ValueError(f"every k must be at least 1, got {cutoffs}")
        ranks = np.asarray(predictions, dtype=np.int64)
        if (ranks < 0).any():
            raise ValueError(
                f"ranks must be non-negative, query {int((ranks < 0).argmax())} is not"
            )
        result: dict = {f"R@{cutoff}": float((ranks < cutoff).mean()) for cutoff in cutoffs}
        result["count"] = len(ranks)
        return result
