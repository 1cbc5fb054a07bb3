"""Fixtures of the evaluation tests: a deterministic encoder and upstream-format data."""

from __future__ import annotations

from pathlib import Path

import pytest

from paraclip_pipeline.settings import STS_DIR_ENV, Settings
from paraclip_pipeline_tests.evaluation.support import (
    HashingEncoder,
    write_aro_fixture,
    write_coco_fixture,
)


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
    """The real STS files named by PARACLIP_STS_DIR (make sets it to the shared copy)."""
    sts_dir = Settings.from_env().sts_dir
    if sts_dir is None or not sts_dir.is_dir():
        pytest.skip(f"real STS data not present ({STS_DIR_ENV}={sts_dir})")
    return sts_dir
