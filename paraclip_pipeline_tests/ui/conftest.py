"""The module-scoped Dagster deployment the UI tests share (starting one takes a while)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from paraclip_pipeline_tests.ui.deployment import Deployment, running_deployment


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with running_deployment(tmp_path_factory.mktemp("ui")) as served:
        yield served
