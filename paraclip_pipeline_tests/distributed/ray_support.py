"""The `ray` tests' cluster: the address `.ci/run` exports (a real two-node local cluster).

A variable of its own, not PARACLIP_RAY_ADDRESS: exported for the whole suite, that one would
send every other test's training to the cluster."""

from __future__ import annotations

import os

import pytest

TEST_RAY_ADDRESS_ENV = "PARACLIP_TEST_RAY_ADDRESS"


@pytest.fixture(scope="session")
def ray_address() -> str:
    """The cluster's address; the test is skipped, saying why, without the extra or a cluster."""
    pytest.importorskip("ray", reason="the optional `ray` extra is not installed")
    address = os.environ.get(TEST_RAY_ADDRESS_ENV)
    if not address:
        pytest.skip(f"{TEST_RAY_ADDRESS_ENV} is unset: no Ray cluster (.ci/run starts one)")
    return address
