"""Fixtures for the filtering tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def write_rules(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str) -> Path:
        path = tmp_path / "filter_rules.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    return write
