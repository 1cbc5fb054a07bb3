"""Fixtures of the deployment tests: a throwaway PostgreSQL server and fresh databases."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest

from paraclip_pipeline_tests.deploy.support import (
    POSTGRES_BINDIR_ENV,
    PostgresServer,
    find_postgres_bindir,
    running_postgres,
)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the test session (its ``database`` is ``postgres``)."""
    pytest.importorskip("psycopg2", reason="psycopg2 (the dev extra) talks to the test server")
    bindir = find_postgres_bindir()
    if bindir is None:
        pytest.skip(
            "no PostgreSQL server binaries (initdb): apt-get install postgresql, "
            f"or set {POSTGRES_BINDIR_ENV}"
        )
    with running_postgres(bindir) as server:
        yield server


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> Iterator[PostgresServer]:
    """A fresh, empty database on the session server, dropped after the test."""
    name = f"paraclip_test_{uuid.uuid4().hex[:12]}"
    admin = postgres_server.connect()
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        yield replace(postgres_server, database=name)
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        admin.close()
