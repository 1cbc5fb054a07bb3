"""OpenAI-compatible servers in their own process on a free loopback port.

Used by the llama end-to-end test and the benchmark; a separate process keeps the
server's CPU work off the client's interpreter (no shared GIL in measurements).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

STARTUP_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerProcess:
    """Runs ``command`` (which must listen on ``self.port``) until the context exits."""

    def __init__(self, command: list[str], port: int, model_alias: str) -> None:
        self.port = port
        self.model_alias = model_alias
        self._command = command
        self._process: subprocess.Popen[bytes] | None = None
        # llama.cpp logs ~100 kB while loading; a pipe nobody reads would block it.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in __exit__

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int:
        """The running server's process id (the benchmark reads its CPU time)."""
        if self._process is None:
            raise RuntimeError("the server is not running")
        return self._process.pid

    def __enter__(self) -> ServerProcess:
        self._process = subprocess.Popen(self._command, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._log.seek(0)
                output = self._log.read().decode(errors="replace")
                raise RuntimeError(f"{self._command[:3]} exited early: {output[-2000:]}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        self.__exit__()
        raise RuntimeError(f"{self._command[:3]} did not answer within {STARTUP_TIMEOUT_S} s")

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        self._log.close()


def llama_server(model_path: Path, *, n_threads: int = 2, n_ctx: int = 2048) -> ServerProcess:
    """llama-cpp-python's OpenAI-compatible server for one GGUF file."""
    port = free_port()
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model_path),
        "--model_alias", model_path.stem,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", str(n_ctx),
        "--n_threads", str(n_threads),
    ]  # fmt: skip
    return ServerProcess(command, port, model_path.stem)


def fake_server(latency_s: float, latency_sigma: float = 0.0) -> ServerProcess:
    """The scripted fake server; latency fixed, or lognormal with that median when sigma > 0."""
    port = free_port()
    command = [
        sys.executable, "-m", "paraclip_pipeline_tests.paraphrase.fake_openai_server",
        "--port", str(port),
        "--latency-s", str(latency_s),
        "--latency-sigma", str(latency_sigma),
    ]  # fmt: skip
    return ServerProcess(command, port, "fake")
