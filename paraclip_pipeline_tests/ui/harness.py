"""Drive a real Dagster deployment the way a person does: webserver, daemon, GraphQL, browser.

Every process is started in its own session (process group) and stopped by that group's id,
so the code servers and run workers the webserver and daemon spawn go down with them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

CHROMIUM = Path(shutil.which("chromium") or "/usr/bin/chromium")
STOP_TIMEOUT_S = 20.0
LOG_TAIL_LINES = 40


class UiHarnessError(RuntimeError):
    """A server did not come up, a GraphQL call failed, or the browser could not render."""


class GraphQLError(UiHarnessError):
    """The GraphQL endpoint answered with errors or with an unexpected result type."""


def log_tail(log_path: Path, lines: int = LOG_TAIL_LINES) -> str:
    if not log_path.exists():
        return f"(no log at {log_path})"
    text = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(text[-lines:])


@dataclass
class ManagedProcess:
    """A child process that leads its own process group, with its output in ``log_path``."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def ensure_alive(self) -> None:
        if self.popen.poll() is not None:
            raise UiHarnessError(
                f"{self.name} exited with code {self.popen.returncode}; log {self.log_path}:\n"
                f"{log_tail(self.log_path)}"
            )

    def terminate(self) -> None:
        """SIGTERM the whole group: Dagster shuts its code servers and run workers down on it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)

    def wait_stopped(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Wait for the leader, SIGKILL the group if it lingers or left processes behind."""
        group = self.popen.pid
        try:
            self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
            self.popen.wait()
        # Grandchildren (code server, run workers) may outlive the leader: clear the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)


def start_process(
    name: str, command: Sequence[str], *, env: Mapping[str, str], cwd: Path, log_dir: Path
) -> ManagedProcess:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with open(log_path, "wb") as log:
        popen = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return ManagedProcess(name=name, popen=popen, log_path=log_path)


@contextlib.contextmanager
def managed_processes() -> Iterator[list[ManagedProcess]]:
    """A list to append started processes to; all are stopped together on exit."""
    started: list[ManagedProcess] = []
    try:
        yield started
    finally:
        # Signal every group first so their graceful shutdowns overlap.
        for process in started:
            process.terminate()
        for process in started:
            process.wait_stopped()


def dagster_tool(name: str) -> str:
    """A console script of the running interpreter's environment (an unactivated venv)."""
    path = Path(sys.executable).with_name(name)
    if not path.is_file():
        raise UiHarnessError(f"{name} is not installed beside {sys.executable}")
    return str(path)


class DagsterGraphQL:
    """Plain POSTs to ``/graphql``; errors raise with the query's operation in the message."""

    def __init__(self, base_url: str, timeout_s: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout_s)

    def close(self) -> None:
        self._client.close()

    def execute(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        operation = query.strip().split("(")[0].split("{")[0].strip()
        response = self._client.post("/graphql", json={"query": query, "variables": variables})
        if response.status_code != 200:
            raise GraphQLError(f"{operation}: HTTP {response.status_code}: {response.text[:2000]}")
        body = response.json()
        if body.get("errors"):
            raise GraphQLError(f"{operation}: {body['errors']}")
        return body["data"]

    def wait_until_serving(
        self, watched: Sequence[ManagedProcess], timeout_s: float, location_name: str
    ) -> None:
        """Poll ``/server_info``, then until the code location has loaded without error."""
        deadline = time.monotonic() + timeout_s
        last_problem = "no answer yet"
        while time.monotonic() < deadline:
            for process in watched:
                process.ensure_alive()
            try:
                self._client.get("/server_info").raise_for_status()
                status = self.location_status(location_name)
            except (httpx.HTTPError, GraphQLError) as error:
                last_problem = str(error)
            else:
                if status["loadStatus"] == "LOADED":
                    error = (status.get("locationOrLoadError") or {}).get("message")
                    if error:
                        raise UiHarnessError(f"code location {location_name!r} failed: {error}")
                    return
                last_problem = f"location {location_name!r} is {status['loadStatus']}"
            time.sleep(0.5)
        raise UiHarnessError(f"{self.base_url} not serving after {timeout_s:.0f} s: {last_problem}")

    def location_status(self, location_name: str) -> dict[str, Any]:
        data = self.execute(
            """
            query LocationStatus {
              workspaceOrError {
                __typename
                ... on Workspace {
                  locationEntries {
                    name
                    loadStatus
                    locationOrLoadError { __typename ... on PythonError { message } }
                  }
                }
              }
            }
            """
        )
        workspace = data["workspaceOrError"]
        if workspace["__typename"] != "Workspace":
            raise GraphQLError(f"LocationStatus: {workspace}")
        for entry in workspace["locationEntries"]:
            if entry["name"] == location_name:
                return entry
        raise GraphQLError(f"LocationStatus: no location named {location_name!r} in {workspace}")


def chromium_render(
    url: str, *, profile_dir: Path, screenshot: Path, window: str = "1600,1000"
) -> str:
    """Screenshot ``url`` into ``screenshot`` and return the DOM after its scripts ran.

    Headless Chromium takes either a screenshot or a DOM dump per start, so it starts twice;
    the virtual-time budget lets the single-page app finish its GraphQL calls and layout.
    """
    base = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile_dir}",
        f"--window-size={window}",
        "--virtual-time-budget=15000",
    ]
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    shot = subprocess.run(
        [*base, f"--screenshot={screenshot}", url], capture_output=True, text=True, timeout=120
    )
    if shot.returncode != 0 or not screenshot.is_file():
        raise UiHarnessError(
            f"chromium screenshot of {url} failed ({shot.returncode}):\n{shot.stderr[-3000:]}"
        )
    dump = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    if dump.returncode != 0 or not dump.stdout.strip():
        raise UiHarnessError(
            f"chromium --dump-dom of {url} failed ({dump.returncode}):\n{dump.stderr[-3000:]}"
        )
    return dump.stdout
