"""Any OpenAI-compatible chat/completions server: vLLM, SGLang, llama.cpp server, Ollama, OpenAI.

``concurrency`` requests stay in flight continuously (a sliding window,
``backends.window``: no drain at the engine's commits), under an optional request and
token rate limit (aiolimiter leaky buckets), over one aiohttp keep-alive pool of
``concurrency`` sockets (``backends.chat_client``, which says why not the ``openai``
package and which retry policy it keeps). A request still failing after ``max_retries``
retries becomes an ``error`` completion, which the engine does not cache, so the next
run retries it. 256-512 in flight need as many sockets: the soft RLIMIT_NOFILE is raised
toward the hard one when it is too low, and a hard limit below the need is a config error.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Iterator, Sequence

from aiolimiter import AsyncLimiter

from paraclip_pipeline.paraphrase.backends.base import (
    Completion,
    ParaphraseBackend,
    ParaphraseRequest,
)
from paraclip_pipeline.paraphrase.backends.chat_client import ChatClient
from paraclip_pipeline.paraphrase.backends.window import LoopThread, SlidingWindow, run_in_batches
from paraclip_pipeline.paraphrase.config import ParaphraserConfig
from paraclip_pipeline.paraphrase.errors import ParaphraseConfigError

# Local servers (llama.cpp, vLLM without --api-key) ignore the key, but send one anyway.
KEYLESS_PLACEHOLDER = "no-key"
CHARS_PER_TOKEN = 4  # rough English average, used only to charge the token bucket up front
SPARE_FILE_DESCRIPTORS = 256  # Parquet files, logs, Dagster's own sockets


def estimated_tokens(prompt: str, source_text: str) -> int:
    """Tokens a request will use: its prompt, plus an answer about as long as its input."""
    return max(1, (len(prompt) + len(source_text)) // CHARS_PER_TOKEN)


def ensure_file_descriptors(needed: int) -> None:
    """Raise the soft RLIMIT_NOFILE to ``needed`` if below it (never lower it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise ParaphraseConfigError(
            f"concurrency needs about {needed} open files but the hard RLIMIT_NOFILE is "
            f"{hard}; lower 'concurrency' or raise the limit (ulimit -Hn)"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


class OpenAICompatibleBackend(ParaphraseBackend):
    name = "openai_compatible"
    default_model = ""

    def __init__(self, config: ParaphraserConfig) -> None:
        super().__init__(config)
        ensure_file_descriptors(config.concurrency + SPARE_FILE_DESCRIPTORS)
        self._client = ChatClient(
            config.base_url or "",
            self._read_api_key(config.api_key_env),
            timeout_s=config.timeout_s,
            max_retries=config.max_retries,
            pool_size=config.concurrency,
        )
        # One event loop (in its own thread) for every call, so the pool's connections are
        # reused and requests keep going while the engine commits.
        self._loop: LoopThread | None = None
        self.window: SlidingWindow | None = None  # the latest one, for its in-flight counts
        # Requests are spaced evenly (a bucket of one) so no burst trips the server's limit;
        # tokens use a one-minute bucket, the way providers account them.
        self._request_limiter = (
            AsyncLimiter(1, 60 / config.requests_per_minute) if config.requests_per_minute else None
        )
        self._token_limiter = (
            AsyncLimiter(config.tokens_per_minute, 60) if config.tokens_per_minute else None
        )

    @staticmethod
    def _read_api_key(env_name: str | None) -> str:
        if env_name is None:
            return KEYLESS_PLACEHOLDER
        value = os.environ.get(env_name)
        if not value:
            raise ParaphraseConfigError(
                f"api_key_env names the environment variable {env_name!r}, which is not set"
            )
        return value

    def generate_stream(
        self, requests: Sequence[ParaphraseRequest], *, batch_size: int, max_wait_s: float
    ) -> Iterator[list[tuple[int, Completion]]]:
        self.calls += len(requests)
        return self._window_batches(requests, batch_size, max_wait_s)

    def _generate(self, requests: Sequence[ParaphraseRequest]) -> list[Completion]:
        completions: dict[int, Completion] = {}
        for batch in self._window_batches(requests, len(requests), self.config.timeout_s):
            completions.update(batch)
        return [completions[index] for index in range(len(requests))]

    def _window_batches(
        self, requests: Sequence[ParaphraseRequest], batch_size: int, max_wait_s: float
    ) -> Iterator[list[tuple[int, Completion]]]:
        if self._loop is None:
            self._loop = LoopThread()
        self.window = SlidingWindow(
            len(requests),
            lambda index: self._one(requests[index]),
            concurrency=self.config.concurrency,
            batch_size=max(1, batch_size),
            max_wait_s=max_wait_s,
        )
        return run_in_batches(self._loop, self.window)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.run(self._client.aclose())
            self._loop.close()
        self._loop = None

    async def _one(self, request: ParaphraseRequest) -> Completion:
        config = self.config
        if self._request_limiter is not None:
            await self._request_limiter.acquire()
        if self._token_limiter is not None:
            charge = estimated_tokens(request.prompt, request.text)
            await self._token_limiter.acquire(min(charge, self._token_limiter.max_rate))
        return await self._client.complete(
            {
                "model": self.model_name,
                "messages": [{"role": "user", "content": request.prompt}],
                "temperature": config.temperature,
                "top_p": config.top_p,
                "max_tokens": config.max_tokens,
                # Omitted rather than null: some servers reject "seed": null.
                **({"seed": config.seed} if config.seed is not None else {}),
            }
        )
