"""A scripted OpenAI-compatible chat/completions server for tests and the fallback benchmark.

The caption inside the prompt's quotes picks the behaviour, so one shard can mix
every failure mode: ``[timeout-once]``, ``[429-once]`` (Retry-After), ``[500-always]``,
``[500-once]``, ``[malformed]``, ``[refuse]``, ``[chatter]``, ``[echo]``, ``[empty]``;
anything else gets a plain answer, after ``latency_s`` seconds. Every request is logged
with the headers it carried, so tests can count attempts and inspect what was sent.

``latency_sigma`` > 0 makes the latency lognormal with median ``latency_s`` (sigma 1.0:
about 1 % of answers 10x slower than the median, like an LLM server's long answers),
drawn from the caption's hash so every run sees the same latencies. ``hold_until``
holds every answer until that many requests are in flight at once (or 30 s passed),
so a test can prove the client really had them all open; ``peak_in_flight`` records it.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import math
import random
import re
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

_QUOTED = re.compile(r'"(.*)"', re.DOTALL)


@dataclass
class RecordedRequest:
    caption: str
    headers: dict[str, str]
    at: float


@dataclass
class FakeServerScript:
    latency_s: float = 0.0
    timeout_sleep_s: float = 2.0
    retry_after_s: float = 1.0
    latency_sigma: float = 0.0
    hold_until: int = 0
    hold_timeout_s: float = 30.0
    requests: list[RecordedRequest] = field(default_factory=list)
    attempts: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    peak_in_flight: int = 0

    def latency_for(self, caption: str) -> float:
        if self.latency_sigma <= 0:
            return self.latency_s
        seed = int.from_bytes(hashlib.blake2b(caption.encode(), digest_size=8).digest(), "big")
        return self.latency_s * math.exp(self.latency_sigma * random.Random(seed).gauss(0, 1))

    def mean_latency_s(self) -> float:
        """The lognormal's mean: what Little's law divides the slots by."""
        return self.latency_s * math.exp(self.latency_sigma**2 / 2)

    def attempts_for(self, marker: str) -> int:
        return sum(count for caption, count in self.attempts.items() if marker in caption)


def _completion(content: str, prompt: str) -> JSONResponse:
    return JSONResponse(
        {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": "fake",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": len(prompt.split()),
                "completion_tokens": len(content.split()),
                "total_tokens": len(prompt.split()) + len(content.split()),
            },
        }
    )


def build_app(script: FakeServerScript) -> Starlette:
    everyone_in = asyncio.Event()

    async def chat_completions(request: Request) -> Response:
        script.in_flight += 1
        script.peak_in_flight = max(script.peak_in_flight, script.in_flight)
        try:
            if script.hold_until:
                if script.in_flight >= script.hold_until:
                    everyone_in.set()
                await asyncio.wait_for(everyone_in.wait(), script.hold_timeout_s)
            return await answer(request)
        finally:
            script.in_flight -= 1

    async def answer(request: Request) -> Response:
        body = await request.json()
        prompt = body["messages"][-1]["content"]
        match = _QUOTED.search(prompt)
        caption = match.group(1) if match else prompt
        script.attempts[caption] += 1
        attempt = script.attempts[caption]
        script.requests.append(RecordedRequest(caption, dict(request.headers), time.monotonic()))
        if "[timeout-once]" in caption and attempt == 1:
            await asyncio.sleep(script.timeout_sleep_s)
        if "[429-once]" in caption and attempt == 1:
            return JSONResponse(
                {"error": {"message": "rate limited"}},
                status_code=429,
                headers={"Retry-After": str(script.retry_after_s)},
            )
        if "[500-always]" in caption or ("[500-once]" in caption and attempt == 1):
            return JSONResponse({"error": {"message": "boom"}}, status_code=500)
        if "[malformed]" in caption:
            return Response('{"choices": [ {"message": ', media_type="application/json")
        await asyncio.sleep(script.latency_for(caption))
        if "[refuse]" in caption:
            return _completion("I'm sorry, but I can't help with that request.", prompt)
        if "[chatter]" in caption:
            return _completion(f'Sure! Here is a paraphrase:\n\n"A photo of {caption}."', prompt)
        if "[echo]" in caption:
            return _completion(caption, prompt)
        if "[empty]" in caption:
            return _completion("", prompt)
        return _completion(f"A picture showing {caption.lower()}", prompt)

    async def stats(request: Request) -> Response:
        return JSONResponse(
            {"answered": len(script.requests), "peak_in_flight": script.peak_in_flight}
        )

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/stats", stats, methods=["GET"]),
        ]
    )


class FakeOpenAIServer:
    """Runs the app with uvicorn in a thread on a free loopback port."""

    def __init__(self, script: FakeServerScript) -> None:
        self.script = script
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self._server = uvicorn.Server(
            uvicorn.Config(build_app(script), log_level="warning", lifespan="off", backlog=4096)
        )
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> FakeOpenAIServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake OpenAI server did not start within 10 s")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="Scripted fake OpenAI-compatible server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-s", type=float, default=0.0)
    parser.add_argument("--latency-sigma", type=float, default=0.0)
    arguments = parser.parse_args()
    script = FakeServerScript(latency_s=arguments.latency_s, latency_sigma=arguments.latency_sigma)
    app = build_app(script)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=arguments.port,
        log_level="warning",
        lifespan="off",
        backlog=4096,  # 512 clients connect at once
    )


if __name__ == "__main__":
    main()
