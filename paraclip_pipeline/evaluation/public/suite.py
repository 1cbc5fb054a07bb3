"""Score a model and its baseline on every public benchmark file of a data directory.

Used by ``paraclip evaluate`` and by the ``benchmark_report`` asset. Each distinct text
of all files is encoded once per encoder (the same STS-B or caption sentence recurs
across files and metrics); encoding is the long part, so progress is reported while
it runs, and an encoder that declares itself cacheable (the pretrained baseline) reads
what earlier runs encoded from the embedding cache and encodes only the rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from paraclip_pipeline.evaluation.encoders import TextImageEncoder, checked_embeddings
from paraclip_pipeline.evaluation.errors import BenchmarkDataError
from paraclip_pipeline.evaluation.public.benchmarks import BenchmarkFile, load_benchmark_files
from paraclip_pipeline.evaluation.public.bootstrap import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    point_value,
    seed_averaged_bootstrap_interval,
)
from paraclip_pipeline.evaluation.public.embedding_cache import EmbeddingCache, declared_cache_key
from paraclip_pipeline.evaluation.public.selection import Selection

SCALE = 100.0  # scores are reported x100
PROGRESS_INTERVAL_S = 10.0
ENCODE_CHUNK = 512  # progress at least every ~30 s even on a busy 2-core machine
RECORD_KEYS = ("benchmark", "file", "metric", "baseline", "model", "delta", "ci_low", "ci_high")
# The images, items or pairs of the file scored; "subsample of N of M ..." only when capped.
FILE_ITEMS_KEY = "file_items"
SUBSAMPLE_KEY = "subsample"
# Only in records of several models (seeds): their sample std (ddof=1) and each one's score.
MODEL_STD_KEY = "model_std"
SEEDS_KEY = "seeds"

Progress = Callable[[str], None]


def _silent(message: str) -> None:
    del message


@dataclass
class _Reporter:
    progress: Progress
    last: float = 0.0

    def __call__(self, message: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last >= PROGRESS_INTERVAL_S:
            self.progress(message)
            self.last = now


def _encode_all(
    encoder: TextImageEncoder,
    texts: list[str],
    batch_size: int,
    label: str,
    report: _Reporter,
    cache: EmbeddingCache | None,
) -> dict[str, np.ndarray]:
    """Embedding of each distinct text: from the cache when the encoder is cacheable, the
    rest encoded in chunks of similar length (and then cached)."""
    key = declared_cache_key(encoder) if cache is not None else None
    cached = cache.lookup(key, texts) if cache is not None and key else {}
    if cached:
        report(f"{label}: {len(cached)} texts from the embedding cache", force=True)
    encoded = _encode_missing(
        encoder, [t for t in set(texts) if t not in cached], batch_size, label, report
    )
    if cache is not None and key:
        cache.store(key, encoded)
    return {**cached, **encoded}


def _encode_missing(
    encoder: TextImageEncoder, texts: list[str], batch_size: int, label: str, report: _Reporter
) -> dict[str, np.ndarray]:
    unique = sorted(texts, key=lambda text: (len(text), text))  # same batches every run
    rows: list[np.ndarray] = []
    started = time.monotonic()
    report(f"{label}: encoding {len(unique)} distinct texts", force=True)
    for start in range(0, len(unique), ENCODE_CHUNK):
        chunk = unique[start : start + ENCODE_CHUNK]
        rows.append(
            checked_embeddings(encoder.encode_text(chunk, batch_size), len(chunk), "encode_text")
        )
        done = start + len(chunk)
        report(f"{label}: {done}/{len(unique)} texts ({time.monotonic() - started:.0f} s)")
    report(f"{label}: encoded in {time.monotonic() - started:.0f} s", force=True)
    embeddings = np.concatenate(rows) if rows else np.zeros((0, 0), np.float32)
    return dict(zip(unique, embeddings, strict=True))


def _embedder(table: dict[str, np.ndarray]) -> Callable[[list[str]], np.ndarray]:
    return lambda texts: np.stack([table[text] for text in texts])


def _records_for(
    item: BenchmarkFile,
    models: list[dict[str, np.ndarray]],
    baseline: dict[str, np.ndarray],
    seeds: list[int | None],
    resamples: int,
    seed: int,
) -> list[dict[str, Any]]:
    records = []
    baseline_measures = {m.metric: m for m in item.measure(_embedder(baseline))}
    per_seed = [item.measure(_embedder(table)) for table in models]
    for measures in zip(*per_seed, strict=True):
        measured = measures[0]
        reference = baseline_measures[measured.metric]
        values = [point_value(m.statistic, m.arrays) for m in measures]
        model_value = float(np.mean(values))
        baseline_value = point_value(reference.statistic, reference.arrays)
        interval = seed_averaged_bootstrap_interval(
            measured.statistic,
            [m.arrays for m in measures],
            reference.arrays,
            resamples=resamples,
            seed=seed,
        )
        record = {
            "benchmark": item.benchmark,
            "file": item.relative,
            "metric": measured.metric,
            "baseline": round(SCALE * baseline_value, 4),
            "model": round(SCALE * model_value, 4),
            "delta": round(SCALE * (model_value - baseline_value), 4),
            "ci_low": round(SCALE * interval.low, 4),
            "ci_high": round(SCALE * interval.high, 4),
            "items": len(measured.arrays[0]),
            "notes": list(measured.notes),
            FILE_ITEMS_KEY: item.items,
        }
        if item.subsample_note:
            record[SUBSAMPLE_KEY] = item.subsample_note
        if len(measures) > 1:
            record[MODEL_STD_KEY] = round(SCALE * float(np.std(values, ddof=1)), 4)
            record[SEEDS_KEY] = [
                {"seed": label, "model": round(SCALE * value, 4)}
                for label, value in zip(seeds, values, strict=True)
            ]
        records.append(record)
    return records


def _model_label(labels: list[int | None], index: int) -> str:
    return "model" if len(labels) == 1 else f"model (seed {labels[index]})"


def run_public_benchmarks(
    data_dir: Path,
    model: TextImageEncoder | Sequence[TextImageEncoder],
    baseline: TextImageEncoder,
    *,
    seeds: Sequence[int | None] | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    batch_size: int = 64,
    progress: Progress = _silent,
    selection: Selection | None = None,
    cache: EmbeddingCache | None = None,
) -> list[dict[str, Any]]:
    """One record per (file, metric): baseline, model, delta and its 95% interval, x100.

    Records carry the keys of ``RECORD_KEYS`` plus ``items`` (the bootstrap's unit count),
    ``notes``, ``file_items`` and, for a file capped by ``selection.max_items``,
    ``subsample``. ``model is baseline`` encodes once (deltas are then exactly 0).
    ``selection`` picks the files and caps their items (default: everything); with
    ``cache``, encoders that declare an ``embedding_cache_key`` are cached there.

    ``model`` may be several encoders, one per training seed (``seeds`` labels them; the
    default labels are their positions): ``model`` is then the mean of their scores,
    ``delta`` that mean minus the baseline, and the interval comes from item resamples on
    which every seed is scored and the seeds' scores averaged
    (``bootstrap.seed_averaged_bootstrap_interval``); such records gain ``model_std`` and
    ``seeds`` (each seed's score). One encoder gives exactly the single-model records.
    """
    models = list(model) if isinstance(model, Sequence) else [model]
    labels: list[int | None] = list(seeds) if seeds is not None else list(range(len(models)))
    if not models or len(labels) != len(models):
        raise ValueError(f"{len(models)} model(s) but seed labels {labels}")
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise BenchmarkDataError(data_dir, "evaluation data directory does not exist")
    report = _Reporter(progress)
    files = load_benchmark_files(data_dir, selection)
    if not files:
        raise BenchmarkDataError(
            data_dir,
            "no benchmark files found (expected */captions.txt, sugarcrepe_pp/*.json, "
            "paws/*.tsv, mrpc/msr_paraphrase_*.txt or stsb/sts-*.csv)",
        )
    report(f"{len(files)} benchmark files under {data_dir}", force=True)
    texts = [text for item in files for text in item.texts]
    tables: dict[int, dict[str, np.ndarray]] = {}  # by id: an encoder given twice encodes once
    for index, encoder in enumerate([*models, baseline]):
        if id(encoder) not in tables:
            label = "baseline" if index == len(models) else _model_label(labels, index)
            tables[id(encoder)] = _encode_all(encoder, texts, batch_size, label, report, cache)
    model_tables = [tables[id(encoder)] for encoder in models]
    records = []
    for item in files:
        records.extend(
            _records_for(item, model_tables, tables[id(baseline)], labels, resamples, seed)
        )
        report(f"scored {item.relative}", force=True)
    return records
