"""Paraphrased-retrieval scoring: batched top-k + vectorised AO/JS vs a per-query loop.

The held-out text-to-text benchmark ranks a gallery of every held-out caption for two
queries per pair, so its cost grows with pairs x gallery. Baseline: what a direct
transcription of the definitions does (full sort per query, Python sets per prefix).
Run: .venv/bin/python benchmarks/bench_evaluation.py [--queries N] [--gallery N]
"""

from __future__ import annotations

import argparse
import os

# One BLAS thread: a fair, repeatable comparison on a shared machine.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import time

import numpy as np

from paraclip_pipeline.evaluation.metrics import load_metric
from paraclip_pipeline.evaluation.paraphrase_retrieval import score_rank_similarity


def unit_rows(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    matrix = rng.standard_normal((rows, dim)).astype(np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def per_query_baseline(
    original: np.ndarray, paraphrased: np.ndarray, gallery: np.ndarray, k: int
) -> tuple[float, float]:
    ao_values, js_values = [], []
    for query, paraphrase in zip(original, paraphrased, strict=True):
        a = np.argsort(-(gallery @ query), kind="stable")[:k].tolist()
        b = np.argsort(-(gallery @ paraphrase), kind="stable")[:k].tolist()
        ao_values.append(sum(len(set(a[:d]) & set(b[:d])) / d for d in range(1, k + 1)) / k)
        js_values.append(len(set(a) & set(b)) / len(set(a) | set(b)))
    return float(np.mean(ao_values)), float(np.mean(js_values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--gallery", type=int, default=20000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    gallery = unit_rows(rng, args.gallery, args.dim)
    original = gallery[: args.queries]
    # Paraphrases: the original embedding nudged, as a robust encoder would place them.
    noise = unit_rows(rng, args.queries, args.dim)
    paraphrased = original + 0.6 * noise
    paraphrased /= np.linalg.norm(paraphrased, axis=1, keepdims=True)

    load_metric("rank_similarity")  # one-off import of `evaluate`, not part of either timing
    started = time.perf_counter()
    scores, _, _ = score_rank_similarity(original, paraphrased, gallery, [args.k])
    batched_s = time.perf_counter() - started

    started = time.perf_counter()
    baseline_ao, baseline_js = per_query_baseline(original, paraphrased, gallery, args.k)
    baseline_s = time.perf_counter() - started

    if not (
        np.isclose(scores[f"AO@{args.k}"], baseline_ao)
        and np.isclose(scores[f"JS@{args.k}"], baseline_js)
    ):
        raise SystemExit(
            f"results differ: batched {scores} vs baseline AO {baseline_ao} JS {baseline_js}"
        )
    print(
        f"rank similarity, {args.queries} query pairs x {args.gallery} gallery, dim {args.dim}, "
        f"k={args.k}: AO={baseline_ao:.4f} JS={baseline_js:.4f} (identical in both)"
    )
    print(f"  per-query baseline: {baseline_s:.3f} s ({args.queries / baseline_s:,.0f} pairs/s)")
    print(f"  batched + vectorised: {batched_s:.3f} s ({args.queries / batched_s:,.0f} pairs/s)")
    print(f"  speed-up: {baseline_s / batched_s:.1f}x")


if __name__ == "__main__":
    main()
