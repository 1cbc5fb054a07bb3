"""Baseline vs fine-tuned rows of the report: every task x metric, the averages, headline."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace

from paraclip_pipeline.evaluation.results import BenchmarkResult, SuiteResult

AVERAGE_TASK = "average"


@dataclass(frozen=True)
class ComparisonRow:
    benchmark: str
    task: str
    metric: str
    baseline: float | None
    finetuned: float | None
    seed_values: tuple[float, ...] = ()  # each seed's fine-tuned score when there are several

    @property
    def seed_std(self) -> float | None:
        """Sample std (ddof=1) over the seeds; None with fewer than two."""
        return statistics.stdev(self.seed_values) if len(self.seed_values) > 1 else None

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


def _mean(values: list[float]) -> float:
    finite = [value for value in values if math.isfinite(value)]
    return sum(finite) / len(finite) if finite else math.nan


def mean_suite(seeds: Sequence[SuiteResult]) -> SuiteResult:
    """The seeds' results averaged score by score (non-finite values left out); per-query
    distributions pooled over the seeds, so a histogram's mean is the seeds' mean."""
    first = seeds[0]
    benchmarks = {}
    for name, result in first.benchmarks.items():
        same = [seed.benchmarks[name] for seed in seeds if name in seed.benchmarks]
        benchmarks[name] = replace(
            result,
            scores={
                task: {
                    metric: _mean([r.scores[task][metric] for r in same if task in r.scores])
                    for metric in metrics
                }
                for task, metrics in result.scores.items()
            },
            averages={
                metric: _mean([r.averages[metric] for r in same if metric in r.averages])
                for metric in result.averages
            },
            distributions={
                key: [value for r in same for value in r.distributions.get(key, [])]
                for key in result.distributions
            },
        )
    return SuiteResult(benchmarks, list(first.rank_ks), dict(first.elapsed_s))


def with_seed_values(
    rows: list[ComparisonRow],
    baseline: SuiteResult,
    seeds: Sequence[SuiteResult],
    *,
    summary: bool,
) -> list[ComparisonRow]:
    """``rows`` (of the seeds' mean) with each seed's own fine-tuned value attached."""
    if len(seeds) < 2:
        return rows
    per_seed = [
        {
            (r.benchmark, r.task, r.metric): r.finetuned
            for r in comparison_rows(baseline, seed, summary=summary)
        }
        for seed in seeds
    ]
    return [
        replace(
            row,
            seed_values=tuple(
                value
                for table in per_seed
                if (value := table.get((row.benchmark, row.task, row.metric))) is not None
            ),
        )
        for row in rows
    ]


def seed_headline_std(baseline: SuiteResult, seeds: Sequence[SuiteResult]) -> dict[str, float]:
    """``<stem>_finetuned_std``: sample std over the seeds of each headline average."""
    if len(seeds) < 2:
        return {}
    per_seed = [headline_numbers(baseline, seed) for seed in seeds]
    names = [name for name in per_seed[0] if name.endswith("_finetuned")]
    spread = {}
    for name in names:
        values = [numbers[name] for numbers in per_seed if name in numbers]
        if len(values) > 1:
            spread[f"{name}_std"] = statistics.stdev(values)
    return spread
