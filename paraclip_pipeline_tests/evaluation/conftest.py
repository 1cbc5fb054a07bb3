"""Fixtures of the evaluation tests: a deterministic encoder and upstream-format data."""

from __future__ import annotations

from pathlib import Path

import pytest

from paraclip_pipeline_tests.evaluation.support import (
    HashingEncoder,
    write_aro_fixture,
    write_coco_fixture,
)

REAL_STS_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "sts"


@pytest.fixture
def encoder() -> HashingEncoder:
    return HashingEncoder(seed=0)


@pytest.fixture
def aro_dir(tmp_path: Path) -> Path:
    write_aro_fixture(tmp_path / "aro")
    return tmp_path / "aro"


@pytest.fixture
def coco_dir(tmp_path: Path) -> Path:
    write_coco_fixture(tmp_path / "coco")
    return tmp_path / "coco"


@pytest.fixture
def real_sts_dir() -> Path:
    if not REAL_STS_DIR.is_dir():
        pytest.skip(f"real STS data not present at {REAL_STS_DIR}")
    return REAL_STS_DIR
