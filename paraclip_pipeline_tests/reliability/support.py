"""Helpers for the reliability catalogue: child processes to kill part-way, failed runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from paraclip_pipeline.settings import REPO_ROOT
from paraclip_pipeline_tests.defs.support import Pipeline
from paraclip_pipeline_tests.reliability.workers import PAUSE_ENV

WORKERS = "paraclip_pipeline_tests.reliability.workers"


def start_worker(
    *args: str, pause_s: float = 0.0, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """``workers.py TASK ARGS`` in a child Python; stdout/stderr captured."""
    child_env = {
        **os.environ,
        PAUSE_ENV: str(pause_s),
        "OMP_NUM_THREADS": "1",
        **(env or {}),
    }
    return subprocess.Popen(
        [sys.executable, "-m", WORKERS, *args],
        cwd=REPO_ROOT,
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_worker(*args: str, env: dict[str, str] | None = None, timeout_s: float = 120) -> str:
    """Run a worker to completion and return its stdout; a failure shows its stderr."""
    process = start_worker(*args, env=env)
    stdout, stderr = process.communicate(timeout=timeout_s)
    assert process.returncode == 0, f"worker {args[0]} failed:\n{stderr[-3000:]}"
    return stdout


def kill_when(
    process: subprocess.Popen[str], ready: Callable[[], bool], timeout_s: float = 120
) -> None:
    """SIGKILL ``process`` as soon as ``ready()`` holds; fail if it finished first."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        if process.poll() is not None:
            _, stderr = process.communicate()
            raise AssertionError(
                f"worker exited ({process.returncode}) before the kill point:\n{stderr[-3000:]}"
            )
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("kill point not reached in time")
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL


def temp_files(directory: Path) -> list[Path]:
    """Leftovers of ``storage.atomic_path`` (hidden ``.<name>.*.tmp`` siblings)."""
    return sorted(directory.rglob(".*.tmp")) if directory.exists() else []


def run_shard_job(
    pipeline: Pipeline, key: str, defs: dg.Definitions | None = None
) -> dg.ExecuteInProcessResult:
    """``shard_job`` for one partition, returning the result even when a step failed."""
    job = (defs or pipeline.defs).resolve_job_def("shard_job")
    return job.execute_in_process(
        partition_key=key, instance=pipeline.instance, raise_on_error=False
    )


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    """What the UI shows for a failed run: each failed step's description or error message."""
    texts = []
    for event in result.get_step_failure_events():
        data = event.step_failure_data
        if data.user_failure_data is not None and data.user_failure_data.description:
            texts.append(data.user_failure_data.description)
            continue
        error = data.error
        while error is not None:  # the UI shows the whole "caused by" chain
            texts.append(error.message)
            error = error.cause
    return "\n".join(texts)
