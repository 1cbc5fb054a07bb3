"""Rank similarity of two ranked lists (AO@k, JS@k) as a local `evaluate` metric.

Paraphrased retrieval (Cheng et al., arXiv 2405.03190) retrieves once with the original
and once with the paraphrased query and compares the two top-k lists:
JS@k = |A ∩ B| / |A ∪ B| of the top-k sets, and
AO@k = (1/k) Σ_{d=1..k} |A[:d] ∩ B[:d]| / d (average overlap of every prefix).
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Average overlap (AO@k) and Jaccard similarity (JS@k) between the ranked top-k lists of
an original and a paraphrased query; k is the length of the lists.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of list of int): top-k ids retrieved with the paraphrased query, best first.
    references (list of list of int): top-k ids retrieved with the original query, best first.
Every list has the same length k and holds k distinct ids.
Returns:
    ao, js (float): means over queries, in [0, 1].
    ao_per_query, js_per_query (list of float): one value per query.
    k (int), count (int).
"""

# Bounds the (rows, k, k) comparison tensor to about 16M booleans per block.
_ELEMENTS_PER_BLOCK = 1 << 24


def _overlap_scores(original: np.ndarray, paraphrased: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AO@k and JS@k per row of two (n, k) arrays of distinct ids.

    For the item at depth j of the original list, let m = max(j, its depth in the
    paraphrased list). It lies in both prefixes of every length d > m, so it adds
    Σ_{d=m+1..k} 1/d = H_k - H_m to Σ_d |A[:d] ∩ B[:d]| / d.
    """
    rows, k = original.shape
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, k + 1))])
    ao = np.empty(rows)
    js = np.empty(rows)
    block = max(1, _ELEMENTS_PER_BLOCK // (k * k))
    depth = np.arange(k)
    for start in range(0, rows, block):
        a = original[start : start + block]
        b = paraphrased[start : start + block]
        matches = a[:, :, None] == b[:, None, :]
        found = matches.any(axis=2)
        depth_in_b = np.where(found, matches.argmax(axis=2), k)
        both = np.maximum(depth[None, :], depth_in_b)
        contributions = np.where(found, harmonic[k] - harmonic[np.minimum(both, k)], 0.0)
        ao[start : start + block] = contributions.sum(axis=1) / k
        shared = found.sum(axis=1)
        js[start : start + block] = shared / (2 * k - shared)
    return ao, js


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class RankSimilarity(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("int64")),
                    "references": datasets.Sequence(datasets.Value("int64")),
                }
            ),
        )

    def _compute(self, predictions: list[list[int]], references: list[list[int]]) -> dict:
        if not predictions:
            raise ValueError("rank similarity needs at least one query")
        lengths = {len(row) for row in predictions} | {len(row) for row in references}
        if len(lengths) != 1 or 0 in lengths:
            raise ValueError(f"all ranked lists must share one non-zero length k, got {lengths}")
        paraphrased = np.asarray(predictions, dtype=np.int64)
        original = np.asarray(references, dtype=np.int64)
        for name, lists in (("predictions", paraphrased), ("references", original)):
            ordered = np.sort(lists, axis=1)
            repeated = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
            if repeated.any():
                raise ValueError(f"{name} row {int(repeated.argmax())} repeats an item id")
        ao, js = _overlap_scores(original, paraphrased)
        return {
            "ao": float(ao.mean()),
            "js": float(js.mean()),
            "ao_per_query": ao.tolist(),
            "js_per_query": js.tolist(),
            "k": int(original.shape[1]),
            "count": int(original.shape[0]),
        }
