"""The whole evaluation suite for one encoder: every benchmark whose data is present.

A benchmark whose data is absent is reported as absent (never as a zero); data that is
present but malformed raises ``BenchmarkDataError`` naming the file and row.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from paraclip_pipeline.evaluation import aro, coco, image_text_retrieval, paraphrase_retrieval, sts
from paraclip_pipeline.evaluation.encoders import TextImageEncoder
from paraclip_pipeline.evaluation.results import BenchmarkResult, SuiteResult

COCO_CAPTIONS_FILENAME = "dataset_coco.json"
COCO_PARAPHRASES_FILENAME = "paraphrased_queries.jsonl"
COCO_EMBEDDINGS_FILENAME = "image_embeddings.npz"


@dataclass(frozen=True)
class EvaluationConfig:
    """Where benchmark data lives and how to score it; every location is optional.

    ``coco_dir`` is a shorthand: unset ``coco_*`` paths default to
    ``coco_dir/dataset_coco.json``, images under ``coco_dir``,
    ``coco_dir/paraphrased_queries.jsonl`` and ``coco_dir/image_embeddings.npz`` (the
    last two only when they exist).
    """

    sts_dir: Path | None = None
    aro_dir: Path | None = None
    coco_dir: Path | None = None
    coco_captions_json: Path | None = None
    coco_images_dir: Path | None = None
    coco_paraphrases: Path | None = None
    coco_image_embeddings: Path | None = None
    coco_split: str = "test"
    rank_k: int | tuple[int, ...] = 10
    aro_min_attribute_pair_count: int = aro.MIN_ATTRIBUTE_PAIR_COUNT
    text_batch_size: int = 64  # encoders sort by length; small batches carry little padding
    image_batch_size: int = 64

    def __post_init__(self) -> None:
        ks = self.rank_ks
        if not ks or any(k < 1 for k in ks):
            raise ValueError(f"rank_k must be positive integers, got {self.rank_k!r}")

    @property
    def rank_ks(self) -> tuple[int, ...]:
        """The k values of AO@k / JS@k, sorted, without repeats."""
        ks = (self.rank_k,) if isinstance(self.rank_k, int) else tuple(self.rank_k)
        return tuple(sorted(set(ks)))

    def _coco_default(self, explicit: Path | None, filename: str, *, optional: bool) -> Path | None:
        if explicit is not None or self.coco_dir is None:
            return explicit
        candidate = self.coco_dir / filename
        return None if optional and not candidate.exists() else candidate

    @property
    def coco_captions(self) -> Path | None:
        return self._coco_default(self.coco_captions_json, COCO_CAPTIONS_FILENAME, optional=False)

    @property
    def coco_images(self) -> Path | None:
        return self.coco_images_dir or self.coco_dir

    @property
    def coco_paraphrase_file(self) -> Path | None:
        return self._coco_default(self.coco_paraphrases, COCO_PARAPHRASES_FILENAME, optional=True)

    @property
    def coco_embeddings_file(self) -> Path | None:
        return self._coco_default(
            self.coco_image_embeddings, COCO_EMBEDDINGS_FILENAME, optional=True
        )


def _coco_benchmarks(
    encoder: TextImageEncoder, config: EvaluationConfig
) -> tuple[BenchmarkResult, BenchmarkResult]:
    """Both COCO benchmarks; the image gallery is embedded once and shared."""
    captions_json = config.coco_captions
    if captions_json is None or not captions_json.is_file():
        reason = (
            "no COCO captions JSON given"
            if captions_json is None
            else f"COCO captions JSON {captions_json} not found"
        )
        return (
            BenchmarkResult.absent(
                paraphrase_retrieval.COCO_NAME, paraphrase_retrieval.COCO_TITLE, reason
            ),
            BenchmarkResult.absent(
                image_text_retrieval.BENCHMARK_NAME, image_text_retrieval.BENCHMARK_TITLE, reason
            ),
        )
    images_dir = config.coco_images or captions_json.parent
    images = coco.load_karpathy_split(captions_json, images_dir, config.coco_split)
    gallery = coco.embed_images(
        encoder, images, config.image_batch_size, config.coco_embeddings_file
    )
    zero_shot = image_text_retrieval.evaluate_zero_shot_retrieval(
        encoder, images, gallery, config.text_batch_size
    )
    paraphrase_file = config.coco_paraphrase_file
    if paraphrase_file is None:
        paraphrased = BenchmarkResult.absent(
            paraphrase_retrieval.COCO_NAME,
            paraphrase_retrieval.COCO_TITLE,
            "no paraphrased-query file given",
        )
    else:
        queries = coco.load_paraphrased_queries(paraphrase_file)
        paraphrased = paraphrase_retrieval.evaluate_coco_rank_similarity(
            encoder,
            [query.original for query in queries],
            [query.paraphrase for query in queries],
            gallery,
            config.rank_ks,
            config.text_batch_size,
        )
    return paraphrased, zero_shot


def run_suite(
    encoder: TextImageEncoder, config: EvaluationConfig, heldout_pairs: pa.Table | None
) -> SuiteResult:
    """Run every benchmark; ``heldout_pairs`` has columns text, paraphrase_1, paraphrase_2."""
    elapsed: dict[str, float] = {}
    benchmarks: dict[str, BenchmarkResult] = {}

    def timed(name: str, run: Callable[[], BenchmarkResult | tuple[BenchmarkResult, ...]]) -> None:
        started = time.perf_counter()
        outcome = run()
        for result in outcome if isinstance(outcome, tuple) else (outcome,):
            benchmarks[result.name] = result
        elapsed[name] = round(time.perf_counter() - started, 3)

    timed("sts", lambda: sts.evaluate_sts(encoder, config.sts_dir, config.text_batch_size))
    timed(
        "heldout",
        lambda: paraphrase_retrieval.evaluate_heldout_rank_similarity(
            encoder, heldout_pairs, config.rank_ks, config.text_batch_size
        ),
    )
    timed("coco", lambda: _coco_benchmarks(encoder, config))
    timed(
        "aro",
        lambda: aro.evaluate_aro(
            encoder,
            config.aro_dir,
            config.text_batch_size,
            config.image_batch_size,
            config.aro_min_attribute_pair_count,
        ),
    )
    return SuiteResult(benchmarks=benchmarks, rank_ks=list(config.rank_ks), elapsed_s=elapsed)


__all__ = ["EvaluationConfig", "SuiteResult", "TextImageEncoder", "run_suite"]
