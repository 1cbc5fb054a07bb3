"""Has the fine-tune lost ground on the dev benchmarks? One verdict per public metric.

The tolerances are data (``tolerances.yaml`` beside this module): which files are gated
(dev and validation splits; test splits are reported, never gated) and how many points
each benchmark's metrics may fall below the pretrained baseline. ``benchmark_report``'s
asset check and ``paraclip demo`` both show the verdicts.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from paraclip_pipeline.evaluation.errors import EvaluationError

TOLERANCES_FILE = Path(__file__).with_name("tolerances.yaml")
OK = "ok"
DROPPED = "DROPPED"
NOT_GATED = "not gated"
COLUMNS = ("file", "metric", "baseline", "model", "delta", "95% CI", "max drop", "verdict")


class Tolerances(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    gated_files: tuple[str, ...]
    max_drop: dict[str, float] = Field(default_factory=dict)

    def gates(self, file: str) -> bool:
        return any(fnmatch.fnmatchcase(file, pattern) for pattern in self.gated_files)


def load_tolerances(path: Path = TOLERANCES_FILE) -> Tolerances:
    try:
        values = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        tolerances = Tolerances.model_validate(values)
    except (OSError, yaml.YAMLError, ValidationError) as error:
        raise EvaluationError(f"{path}: not a valid tolerances file: {error}") from error
    negative = sorted(name for name, drop in tolerances.max_drop.items() if drop < 0)
    if negative:
        raise EvaluationError(f"{path}: max_drop of {', '.join(negative)} is negative")
    return tolerances


@dataclass(frozen=True)
class Verdict:
    record: dict[str, Any]
    max_drop: float | None  # None: the file is not gated
    verdict: str

    def row(self) -> list[str]:
        record = self.record
        return [
            record["file"],
            record["metric"],
            f"{record['baseline']:.2f}",
            f"{record['model']:.2f}",
            f"{record['delta']:+.2f}",
            f"[{record['ci_low']:+.2f}, {record['ci_high']:+.2f}]",
            "" if self.max_drop is None else f"{self.max_drop:.2f}",
            self.verdict,
        ]


@dataclass(frozen=True)
class Judgement:
    verdicts: tuple[Verdict, ...]

    @property
    def dropped(self) -> list[Verdict]:
        return [verdict for verdict in self.verdicts if verdict.verdict == DROPPED]

    @property
    def gated(self) -> list[Verdict]:
        return [verdict for verdict in self.verdicts if verdict.max_drop is not None]

    @property
    def passed(self) -> bool:
        return not self.dropped

    def summary(self) -> str:
        if not self.gated:
            return "no dev metric to check"
        if self.passed:
            return f"passed: none of {len(self.gated)} dev metrics dropped beyond its tolerance"
        names = ", ".join(
            f"{v.record['file']} {v.record['metric']} {v.record['delta']:+.2f}"
            for v in self.dropped
        )
        return f"FAILED: {len(self.dropped)} of {len(self.gated)} dev metrics dropped: {names}"

    def markdown(self) -> str:
        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join(verdict.row()) + " |" for verdict in self.verdicts]
        return "\n".join(lines)

    def records(self) -> list[dict[str, Any]]:
        return [
            {**verdict.record, "max_drop": verdict.max_drop, "verdict": verdict.verdict}
            for verdict in self.verdicts
        ]


def judge(records: Sequence[dict[str, Any]], tolerances: Tolerances) -> Judgement:
    """A verdict for every record of ``public.suite.run_public_benchmarks``."""
    verdicts = []
    for record in records:
        if not tolerances.gates(record["file"]):
            verdicts.append(Verdict(record, None, NOT_GATED))
            continue
        if record["benchmark"] not in tolerances.max_drop:
            raise EvaluationError(
                f"no max_drop for benchmark {record['benchmark']!r} (gated file "
                f"{record['file']}); known: {sorted(tolerances.max_drop)}"
            )
        max_drop = tolerances.max_drop[record["benchmark"]]
        verdicts.append(Verdict(record, max_drop, DROPPED if record["delta"] < -max_drop else OK))
    return Judgement(tuple(verdicts))
