"""Exceptions of the evaluation package; each message names the file, row or column at fault."""

from __future__ import annotations

from pathlib import Path


class EvaluationError(Exception):
    """Base class, so callers can catch everything this package raises on purpose."""


class BenchmarkDataError(EvaluationError):
    """A benchmark file (or input table) is present but cannot be read as its format.

    ``line`` is a 1-based line of a text file, ``row`` a 0-based row of a table or list.
    """

    def __init__(
        self,
        path: Path | str,
        problem: str,
        *,
        line: int | None = None,
        row: int | None = None,
        column: str | int | None = None,
    ) -> None:
        where = str(path)
        if line is not None:
            where += f", line {line}"
        if row is not None:
            where += f", row {row}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(f"{where}: {problem}")
        self.path = Path(path)
        self.line = line
        self.row = row
        self.column = column


class EncoderOutputError(EvaluationError):
    """The encoder returned embeddings of the wrong shape, type or norm."""


class ReportError(EvaluationError):
    """The results handed to the report cannot be compared (e.g. different benchmarks' metrics)."""
