"""Start ``python -m llama_cpp.server`` on a free loopback port (tests and the benchmark)."""

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


class LlamaServer:
    """A llama.cpp OpenAI-compatible server serving one GGUF, stopped on exit."""

    def __init__(self, model_path: Path, *, n_threads: int = 2, n_ctx: int = 2048) -> None:
        self.port = free_port()
        self.model_alias = model_path.stem
        self._command = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model", str(model_path),
            "--model_alias", self.model_alias,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--n_ctx", str(n_ctx),
            "--n_threads", str(n_threads),
        ]  # fmt: skip
        self._process: subprocess.Popen[bytes] | None = None
        # llama.cpp logs ~100 kB while loading; a pipe nobody reads would block it.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in __exit__

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> LlamaServer:
        self._process = subprocess.Popen(self._command, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._log.seek(0)
                output = self._log.read().decode(errors="replace")
                raise RuntimeError(f"llama_cpp.server exited early: {output[-2000:]}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        self.__exit__()
        raise RuntimeError(f"llama_cpp.server did not answer within {STARTUP_TIMEOUT_S} s")

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
