"""JSON-serialisable results of one suite run: per benchmark, per task, plus averages."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

BenchmarkStatus = Literal["ok", "absent"]


@dataclass
class BenchmarkResult:
    """Scores of one benchmark.

    ``scores[task][metric]`` holds raw values (correlations in [-1, 1], everything else
    in [0, 1]); ``averages[metric]`` is the mean over the tasks present;
    ``headline_stems[metric]`` names that average in the report's headline numbers.
    ``distributions`` keeps per-query values (e.g. AO@10 of every query) for plots.
    """

    name: str
    title: str
    status: BenchmarkStatus
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    averages: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    absent_tasks: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    headline_stems: dict[str, str] = field(default_factory=dict)
    distributions: dict[str, list[float]] = field(default_factory=dict)

    @classmethod
    def absent(cls, name: str, title: str, reason: str) -> BenchmarkResult:
        return cls(name=name, title=title, status="absent", notes=[reason])

    @classmethod
    def for_missing_directory(
        cls, name: str, title: str, directory: Path | None, label: str
    ) -> BenchmarkResult | None:
        """The 'absent' result when a benchmark's data directory is not given or not there."""
        if directory is None:
            return cls.absent(name, title, f"no {label} directory given")
        if not directory.is_dir():
            return cls.absent(name, title, f"{label} directory {directory} does not exist")
        return None

    def set_averages(self, metrics: list[str]) -> None:
        """Average each metric over the tasks that report it (absent tasks never count)."""
        for metric in metrics:
            values = [task[metric] for task in self.scores.values() if metric in task]
            finite = [value for value in values if math.isfinite(value)]
            if finite:
                self.averages[metric] = sum(finite) / len(finite)


@dataclass
class SuiteResult:
    """Everything one ``run_suite`` call measured, keyed by benchmark name."""

    benchmarks: dict[str, BenchmarkResult]
    rank_ks: list[int]
    elapsed_s: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "benchmarks": {name: asdict(result) for name, result in self.benchmarks.items()},
            "rank_ks": list(self.rank_ks),
            "elapsed_s": dict(self.elapsed_s),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SuiteResult:
        return cls(
            benchmarks={
                name: BenchmarkResult(**values) for name, values in data["benchmarks"].items()
            },
            rank_ks=list(data["rank_ks"]),
            elapsed_s=dict(data.get("elapsed_s", {})),
        )
