"""Batched similarity ranking: top-k lists and ranks of relevant items.

Query-by-gallery similarity matrices can be large (25k COCO captions x 5k images), so
they are built one block of queries at a time with the block size bounding memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

# About 64 MB of float32 similarities per block.
SIMILARITY_ELEMENTS_PER_BLOCK = 1 << 24


def _query_blocks(query_count: int, gallery_count: int) -> Iterator[slice]:
    block = max(1, SIMILARITY_ELEMENTS_PER_BLOCK // max(1, gallery_count))
    for start in range(0, query_count, block):
        yield slice(start, min(start + block, query_count))


def top_k(queries: np.ndarray, gallery: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k most similar gallery rows per query, best first.

    Ties are broken by the lower gallery index, so the lists are deterministic.
    """
    if not 1 <= k <= len(gallery):
        raise ValueError(f"k={k} must lie in [1, gallery size {len(gallery)}]")
    result = np.empty((len(queries), k), dtype=np.int64)
    for rows in _query_blocks(len(queries), len(gallery)):
        similarities = queries[rows] @ gallery.T
        if k < len(gallery):
            candidates = np.argpartition(-similarities, k - 1, axis=1)[:, :k]
        else:
            candidates = np.broadcast_to(np.arange(len(gallery)), similarities.shape)
        candidate_scores = np.take_along_axis(similarities, candidates, axis=1)
        # lexsort sorts by the last key first: score descending, then index ascending.
        order = np.lexsort((candidates, -candidate_scores), axis=1)
        result[rows] = np.take_along_axis(candidates, order, axis=1)
    return result


def rank_of_first_relevant(
    queries: np.ndarray, gallery: np.ndarray, relevant: Sequence[Sequence[int]]
) -> np.ndarray:
    """0-based rank of each query's best-scoring relevant gallery item.

    The rank counts irrelevant items scoring at least as high as that item, so ties
    count against the model (a constant encoder gets no free hits).
    """
    if len(relevant) != len(queries):
        raise ValueError(f"{len(relevant)} relevance lists for {len(queries)} queries")
    ranks = np.empty(len(queries), dtype=np.int64)
    for rows in _query_blocks(len(queries), len(gallery)):
        similarities = queries[rows] @ gallery.T
        mask = np.zeros(similarities.shape, dtype=bool)
        for offset, items in enumerate(relevant[rows]):
            if not items:
                raise ValueError(f"query {rows.start + offset} has no relevant gallery item")
            mask[offset, list(items)] = True
        best_relevant = np.where(mask, similarities, -np.inf).max(axis=1)
        ranks[rows] = ((similarities >= best_relevant[:, None]) & ~mask).sum(axis=1)
    return ranks
