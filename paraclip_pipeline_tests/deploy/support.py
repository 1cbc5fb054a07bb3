"""Deployment test support: a throwaway PostgreSQL server and lookups of CLI tools.

The server comes from the host's PostgreSQL binaries (Debian's ``postgresql`` package), runs
as an unprivileged account when the tests run as root, listens on 127.0.0.1 on a free port
with its unix socket in its own temporary directory, and is stopped by PID at teardown.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from psycopg2.extensions import connection as PgConnection

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO_ROOT / "docker"

# Override for hosts whose binaries live elsewhere (e.g. /usr/local/pgsql/bin).
POSTGRES_BINDIR_ENV = "PARACLIP_TEST_POSTGRES_BINDIR"
# PostgreSQL refuses to run as root; this account owns the server when the tests are root.
POSTGRES_OS_USER = "postgres"
STARTUP_TIMEOUT_S = 30.0
SHUTDOWN_TIMEOUT_S = 15.0


class PostgresStartError(RuntimeError):
    """The test PostgreSQL server could not be initialised or did not come up."""


@dataclass(frozen=True)
class PostgresServer:
    """Connection details of a running test server (and of one database on it)."""

    host: str
    port: int
    user: str
    password: str
    database: str

    def dagster_env(self) -> dict[str, str]:
        """The variables docker/dagster.yaml reads, pointing at this server."""
        return {
            "DAGSTER_POSTGRES_USER": self.user,
            "DAGSTER_POSTGRES_PASSWORD": self.password,
            "DAGSTER_POSTGRES_HOST": self.host,
            "DAGSTER_POSTGRES_PORT": str(self.port),
            "DAGSTER_POSTGRES_DB": self.database,
        }

    def connect(self, database: str | None = None) -> PgConnection:
        import psycopg2

        return psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=database or self.database,
            connect_timeout=5,
        )


def find_tool(name: str) -> str | None:
    """An executable on PATH or beside the running interpreter (an unactivated venv)."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    return shutil.which(name)


def find_postgres_bindir() -> Path | None:
    """The directory holding initdb and postgres: the override, else the newest Debian one."""
    override = os.environ.get(POSTGRES_BINDIR_ENV)
    if override:
        return Path(override) if (Path(override) / "initdb").is_file() else None
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def free_local_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _server_account() -> pwd.struct_passwd | None:
    """Who runs the server: ``postgres`` when we are root, else ourselves (None)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(POSTGRES_OS_USER)
    except KeyError as error:
        raise PostgresStartError(
            f"running as root, but there is no '{POSTGRES_OS_USER}' account to own the server"
        ) from error


def _as_account(account: pwd.struct_passwd | None) -> dict[str, object]:
    """subprocess keyword arguments that drop to ``account`` (no-op for ourselves)."""
    if account is None:
        return {}
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


def _log_tail(log_path: Path, lines: int = 20) -> str:
    if not log_path.exists():
        return "(no server log)"
    return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def running_postgres(
    bindir: Path, user: str = "dagster", password: str = "paraclip-test-password"
) -> Iterator[PostgresServer]:
    """Initialise a fresh cluster in a temporary directory, run it, and remove it afterwards.

    Host connections need the password (scram-sha-256), as in a real deployment; durability
    settings are off because the data is thrown away.
    """
    account = _server_account()
    # tmp_path lives under a root-only directory, so the cluster gets its own /tmp entry.
    workdir = Path(tempfile.mkdtemp(prefix="paraclip-pg-"))
    try:
        if account is not None:
            os.chown(workdir, account.pw_uid, account.pw_gid)
        data_dir, socket_dir, log_path = workdir / "data", workdir / "socket", workdir / "log"
        password_file = workdir / "password"
        password_file.write_text(password)
        socket_dir.mkdir()
        if account is not None:
            for path in (password_file, socket_dir):
                os.chown(path, account.pw_uid, account.pw_gid)
        initdb = subprocess.run(
            [
                str(bindir / "initdb"),
                "--pgdata",
                str(data_dir),
                "--username",
                user,
                "--pwfile",
                str(password_file),
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ],
            capture_output=True,
            text=True,
            **_as_account(account),
        )
        if initdb.returncode != 0:
            raise PostgresStartError(f"initdb failed in {data_dir}:\n{initdb.stderr}")

        port = free_local_port()
        with open(log_path, "wb") as log:
            server = subprocess.Popen(
                [
                    str(bindir / "postgres"),
                    "-D",
                    str(data_dir),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-k",
                    str(socket_dir),
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                **_as_account(account),
            )
        try:
            info = PostgresServer("127.0.0.1", port, user, password, "postgres")
            _wait_until_accepting(info, server, log_path)
            yield info
        finally:
            # SIGINT is PostgreSQL's "fast" shutdown: abort sessions, then exit cleanly.
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=SHUTDOWN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_until_accepting(info: PostgresServer, server: subprocess.Popen, log_path: Path) -> None:
    import psycopg2

    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if server.poll() is not None:
            raise PostgresStartError(
                f"postgres exited with code {server.returncode}:\n{_log_tail(log_path)}"
            )
        try:
            info.connect().close()
            return
        except psycopg2.OperationalError as error:
            if time.monotonic() > deadline:
                raise PostgresStartError(
                    f"postgres on port {info.port} not ready after {STARTUP_TIMEOUT_S:.0f} s "
                    f"({error}):\n{_log_tail(log_path)}"
                ) from error
            time.sleep(0.2)
