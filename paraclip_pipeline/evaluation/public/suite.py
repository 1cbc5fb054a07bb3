"""Score a model and its baseline on every public benchmark file of a data directory.

Used by ``paraclip evaluate`` and by the ``benchmark_report`` asset. Each distinct text
of all files is encoded once per encoder (the same STS-B or caption sentence recurs
across files and metrics); encoding is the long part, so progress is reported while
it runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
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
    paired_bootstrap_interval,
    point_value,
)

SCALE = 100.0  # scores are reported x100
PROGRESS_INTERVAL_S = 10.0
ENCODE_CHUNK = 512  # progress at least every ~30 s even on a busy 2-core machine
RECORD_KEYS = ("benchmark", "file", "metric", "baseline", "model", "delta", "ci_low", "ci_high")

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
    encoder: TextImageEncoder, texts: list[str], batch_size: int, label: str, report: _Reporter
) -> dict[str, np.ndarray]:
    """Embedding of each distinct text, encoded in chunks of similar length."""
    unique = sorted(set(texts), key=lambda text: (len(text), text))  # same batches every run
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
    model: dict[str, np.ndarray],
    baseline: dict[str, np.ndarray],
    resamples: int,
    seed: int,
) -> list[dict[str, Any]]:
    records = []
    baseline_measures = {m.metric: m for m in item.measure(_embedder(baseline))}
    for measured in item.measure(_embedder(model)):
        reference = baseline_measures[measured.metric]
        model_value = point_value(measured.statistic, measured.arrays)
        baseline_value = point_value(reference.statistic, reference.arrays)
        interval = paired_bootstrap_interval(
            measured.statistic, measured.arrays, reference.arrays, resamples=resamples, seed=seed
        )
        records.append(
            {
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
            }
        )
    return records


def run_public_benchmarks(
    data_dir: Path,
    model: TextImageEncoder,
    baseline: TextImageEncoder,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    batch_size: int = 64,
    progress: Progress = _silent,
) -> list[dict[str, Any]]:
    """One record per (file, metric): baseline, model, delta and its 95% interval, x100.

    Records carry the keys of ``RECORD_KEYS`` plus ``items`` (the bootstrap's unit count)
    and ``notes``. ``model is baseline`` encodes once (deltas are then exactly 0).
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise BenchmarkDataError(data_dir, "evaluation data directory does not exist")
    report = _Reporter(progress)
    files = load_benchmark_files(data_dir)
    if not files:
        raise BenchmarkDataError(
            data_dir,
            "no benchmark files found (expected */captions.txt, sugarcrepe_pp/*.json, "
            "paws/*.tsv, mrpc/msr_paraphrase_*.txt or stsb/sts-*.csv)",
        )
    report(f"{len(files)} benchmark files under {data_dir}", force=True)
    texts = [text for item in files for text in item.texts]
    model_table = _encode_all(model, texts, batch_size, "model", report)
    baseline_table = (
        model_table
        if baseline is model
        else _encode_all(baseline, texts, batch_size, "baseline", report)
    )
    records = []
    for item in files:
        records.extend(_records_for(item, model_table, baseline_table, resamples, seed))
        report(f"scored {item.relative}", force=True)
    return records
