"""Baseline vs fine-tuned rows of the report: every task x metric, the averages, headline."""

from __future__ import annotations

import math
from dataclasses import dataclass

from paraclip_pipeline.evaluation.results import BenchmarkResult, SuiteResult

AVERAGE_TASK = "average"


@dataclass(frozen=True)
class ComparisonRow:
    benchmark: str
    task: str
    metric: str
    baseline: float | None
    finetuned: float | None

    @property
    def delta(self) -> float | None:
        if self.baseline is None or self.finetuned is None:
            return None
        return self.finetuned - self.baseline


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def pair_results(
    baseline: SuiteResult, finetuned: SuiteResult
) -> list[tuple[str, BenchmarkResult | None, BenchmarkResult | None]]:
    names = list(dict.fromkeys([*baseline.benchmarks, *finetuned.benchmarks]))
    return [(name, baseline.benchmarks.get(name), finetuned.benchmarks.get(name)) for name in names]


def comparison_rows(
    baseline: SuiteResult, finetuned: SuiteResult, *, summary: bool
) -> list[ComparisonRow]:
    """Side-by-side rows: every task x metric plus the averages, or (``summary``) only the
    averages that have a headline name."""
    rows = []
    for _, base, tuned in pair_results(baseline, finetuned):
        present = [result for result in (base, tuned) if result and result.status == "ok"]
        if not present:
            continue
        title = present[0].title
        if not summary:
            tasks = dict.fromkeys(task for result in present for task in result.scores)
            for task in tasks:
                metrics = dict.fromkeys(
                    metric for result in present for metric in result.scores.get(task, {})
                )
                for metric in metrics:
                    rows.append(
                        ComparisonRow(
                            title,
                            task,
                            metric,
                            _finite(base.scores.get(task, {}).get(metric)) if base else None,
                            _finite(tuned.scores.get(task, {}).get(metric)) if tuned else None,
                        )
                    )
        metrics = dict.fromkeys(metric for result in present for metric in result.averages)
        for metric in metrics:
            if summary and not any(metric in result.headline_stems for result in present):
                continue
            rows.append(
                ComparisonRow(
                    title,
                    AVERAGE_TASK,
                    metric,
                    _finite(base.averages.get(metric)) if base else None,
                    _finite(tuned.averages.get(metric)) if tuned else None,
                )
            )
    return rows


def headline_numbers(baseline: SuiteResult, finetuned: SuiteResult) -> dict[str, float]:
    """Averaged metrics under short stable names (e.g. ``sts_avg_delta``, ``ao10_delta``)."""
    headline: dict[str, float] = {}
    for _, base, tuned in pair_results(baseline, finetuned):
        if base is None or tuned is None or "absent" in (base.status, tuned.status):
            continue
        for metric, stem in base.headline_stems.items():
            before = _finite(base.averages.get(metric))
            after = _finite(tuned.averages.get(metric))
            if before is None or after is None:
                continue
            headline[f"{stem}_baseline"] = before
            headline[f"{stem}_finetuned"] = after
            headline[f"{stem}_delta"] = after - before
    return headline
