"""Any OpenAI-compatible chat/completions server: vLLM, llama.cpp server, Ollama, OpenAI.

Requests run concurrently (at most ``concurrency`` in flight) under an optional
request and token rate limit (aiolimiter leaky buckets). Retries are the ``openai``
client's own: exponential backoff with jitter on timeouts, connection errors, 408,
409, 429 and 5xx, honouring ``Retry-After``/``retry-after-ms`` up to two minutes,
at most ``max_retries`` times. A request still failing after that becomes an ``error``
completion, which the engine does not cache, so the next run retries it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence

import openai
from aiolimiter import AsyncLimiter

from paraclip_pipeline.paraphrase.backends.base import (
    Completion,
    ParaphraseBackend,
    ParaphraseRequest,
)
from paraclip_pipeline.paraphrase.config import ParaphraserConfig
from paraclip_pipeline.paraphrase.errors import ParaphraseConfigError

# Local servers (llama.cpp, vLLM without --api-key) ignore the key, but the client needs one.
KEYLESS_PLACEHOLDER = "no-key"
CHARS_PER_TOKEN = 4  # rough English average, used only to charge the token bucket up front


def estimated_tokens(prompt: str, source_text: str) -> int:
    """Tokens a request will use: its prompt, plus an answer about as long as its input."""
    return max(1, (len(prompt) + len(source_text)) // CHARS_PER_TOKEN)


class OpenAICompatibleBackend(ParaphraseBackend):
    name = "openai_compatible"
    default_model = ""

    def __init__(self, config: ParaphraserConfig) -> None:
        super().__init__(config)
        self.__api_key = self._read_api_key(config.api_key_env)
        self._runner: asyncio.Runner | None = None
        self._client: openai.AsyncOpenAI | None = None
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

    def _generate(self, requests: Sequence[ParaphraseRequest]) -> list[Completion]:
        # The engine is synchronous (it runs inside a Dagster op). One event loop and one
        # client serve every chunk, so connections and the client's setup are reused.
        if self._runner is None:
            self._runner = asyncio.Runner()
        return self._runner.run(self._generate_all(requests))

    async def _generate_all(self, requests: Sequence[ParaphraseRequest]) -> list[Completion]:
        if self._client is None:
            self._client = openai.AsyncOpenAI(
                base_url=self.config.base_url,
                api_key=self.__api_key,
                timeout=self.config.timeout_s,
                max_retries=self.config.max_retries,
            )
        in_flight = asyncio.Semaphore(self.config.concurrency)
        return list(
            await asyncio.gather(
                *(self._one(self._client, in_flight, request) for request in requests)
            )
        )

    def close(self) -> None:
        if self._runner is not None:
            if self._client is not None:
                self._runner.run(self._client.close())
            self._runner.close()
        self._runner = None
        self._client = None

    async def _one(
        self, client: openai.AsyncOpenAI, in_flight: asyncio.Semaphore, request: ParaphraseRequest
    ) -> Completion:
        config = self.config
        async with in_flight:
            if self._request_limiter is not None:
                await self._request_limiter.acquire()
            if self._token_limiter is not None:
                charge = estimated_tokens(request.prompt, request.text)
                await self._token_limiter.acquire(min(charge, self._token_limiter.max_rate))
            try:
                response = await client.chat.completions.create(
                    model=self.model_name,
                    messages=[{"role": "user", "content": request.prompt}],
                    temperature=config.temperature,
                    top_p=config.top_p,
                    max_tokens=config.max_tokens,
                    # Omitted rather than null: some servers reject "seed": null.
                    **({"seed": config.seed} if config.seed is not None else {}),
                )
            except openai.APIStatusError as exc:
                return Completion(error=f"HTTP {exc.status_code} after retries")
            except openai.APIError as exc:
                return Completion(error=f"{type(exc).__name__} after retries")
            except ValueError as exc:  # a 200 whose body is not valid JSON (JSONDecodeError)
                return Completion(error=f"malformed response: {type(exc).__name__}")
        if not response.choices or response.choices[0].message is None:
            return Completion(error="malformed response: no choices")
        usage = response.usage
        return Completion(
            text=response.choices[0].message.content or "",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
        )
