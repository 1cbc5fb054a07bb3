"""One chat/completions request over a shared aiohttp pool, with the ``openai`` client's retries.

Why aiohttp and not the ``openai`` package: the client's own CPU per request, measured
against a zero-latency fake server on the 2-core dev box (``bench_paraphrase.py``,
``client_cpu`` section): ``openai.AsyncOpenAI`` 1.8 ms at 8 in flight and 4.0-4.8 ms at
256, plain ``httpx.AsyncClient`` 0.9 ms and 3.7-3.9 ms (its pool scans every connection
per request), aiohttp 0.12 ms and 0.16 ms. The ``openai`` client tops out near 250
requests/s per core at 256 in flight, so it, not the LLM server, would bound a big
server's throughput; aiohttp sustains about 6,000/s.

The retry policy is the one the ``openai`` client had (``_base_client.py``): up to
``max_retries`` retries on timeouts, connection errors, 408, 409, 429 and 5xx (an
``x-should-retry`` header overrides), waiting ``Retry-After`` / ``retry-after-ms`` when
it is in (0, 120] s, else 0.5 s x 2^n capped at 8 s, minus up to 25 % jitter. A 200 whose
body is not a chat completion is not retried.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import random
import time
from collections.abc import Mapping

import aiohttp

from paraclip_pipeline.paraphrase.backends.base import Completion

INITIAL_RETRY_DELAY_S = 0.5
MAX_RETRY_DELAY_S = 8.0
MAX_RETRY_AFTER_S = 120.0
RETRYABLE_STATUSES = frozenset({408, 409, 429})


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """The server's requested wait in seconds (``retry-after-ms``, then ``retry-after``)."""
    for header, divisor in (("retry-after-ms", 1000), ("retry-after", 1)):
        value = headers.get(header)
        if value is None:
            continue
        try:
            return float(value) / divisor
        except ValueError:
            continue
    parsed = email.utils.parsedate_tz(headers.get("retry-after") or "")
    return None if parsed is None else float(email.utils.mktime_tz(parsed) - time.time())


def should_retry(status: int, headers: Mapping[str, str]) -> bool:
    wait = retry_after_s(headers)
    if wait is not None and math.isfinite(wait) and wait > MAX_RETRY_AFTER_S:
        return False
    explicit = headers.get("x-should-retry")
    if explicit in ("true", "false"):
        return explicit == "true"
    return status in RETRYABLE_STATUSES or status >= 500


def retry_delay_s(retries_done: int, headers: Mapping[str, str] | None) -> float:
    wait = retry_after_s(headers) if headers is not None else None
    if wait is not None and math.isfinite(wait) and 0 < wait <= MAX_RETRY_AFTER_S:
        return wait
    backoff = min(INITIAL_RETRY_DELAY_S * 2.0 ** min(retries_done, 1000), MAX_RETRY_DELAY_S)
    return backoff * (1 - 0.25 * random.random())


def parse_completion(body: bytes) -> Completion:
    """A chat.completion body -> its first message; anything else is a malformed answer."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        return Completion(error=f"malformed response: {type(exc).__name__}")
    choices = data.get("choices") if isinstance(data, dict) else None
    message = choices[0].get("message") if choices and isinstance(choices[0], dict) else None
    if not isinstance(message, dict):
        return Completion(error="malformed response: no choices")
    usage = data.get("usage") or {}
    return Completion(
        text=message.get("content") or "",
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
    )


class ChatClient:
    """POSTs chat/completions bodies through one keep-alive pool of ``pool_size`` sockets.

    The session is created lazily inside the running event loop (aiohttp binds it there)
    and must be closed from the same loop with :meth:`aclose`.
    """

    def __init__(
        self, base_url: str, api_key: str, *, timeout_s: float, max_retries: int, pool_size: int
    ) -> None:
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_retries = max_retries
        self._pool_size = pool_size
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._pool_size, limit_per_host=0)
            self._session = aiohttp.ClientSession(
                connector=connector, headers=self._headers, timeout=self._timeout
            )
        return self._session

    async def complete(self, body: Mapping[str, object]) -> Completion:
        session = self._open()
        payload = json.dumps(body).encode("utf-8")
        content_type = {"Content-Type": "application/json"}
        retries = 0
        while True:
            headers: Mapping[str, str] | None = None
            try:
                async with session.post(self._url, data=payload, headers=content_type) as response:
                    if response.status == 200:
                        return parse_completion(await response.read())
                    failure = f"HTTP {response.status}"
                    headers = response.headers
                    retryable = should_retry(response.status, headers)
            except TimeoutError:
                failure, retryable = "APITimeoutError", True
            except aiohttp.ClientError:
                failure, retryable = "APIConnectionError", True
            if not retryable or retries >= self._max_retries:
                return Completion(error=f"{failure} after retries")
            await asyncio.sleep(retry_delay_s(retries, headers))
            retries += 1

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
