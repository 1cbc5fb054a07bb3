"""The `ray` tests' cluster: the address `.ci/run` exports (a real two-node local cluster)."""

from __future__ import annotations

import os

import pytest

from paraclip_pipeline.settings import RAY_ADDRESS_ENV


@pytest.fixture(scope="session")
def ray_address() -> str:
    """The cluster's address; the test is skipped, saying why, without the extra or a cluster."""
    pytest.importorskip("ray", reason="the optional `ray` extra is not installed")
    address = os.environ.get(RAY_ADDRESS_ENV)
    if not address:
        pytest.skip(f"{RAY_ADDRESS_ENV} is unset: no Ray cluster (.ci/run starts one)")
    return address
