"""Reading benchmark files: a format error becomes a BenchmarkDataError naming the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from paraclip_pipeline.evaluation.errors import BenchmarkDataError


def read_json_file(path: Path) -> Any:
    """A benchmark's JSON file, or a BenchmarkDataError naming it when it is not valid JSON."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise BenchmarkDataError(path, f"not valid JSON ({error})") from None
