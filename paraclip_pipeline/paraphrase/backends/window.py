"""A sliding window of async requests, handed to synchronous code in commit-sized batches.

The engine is synchronous (it runs inside a Dagster op) and commits answers chunk by
chunk. Draining the window at every chunk boundary would let one slow answer (an LLM
server's 10x tail) idle every other slot, so the window is never drained: a new request
starts as soon as one is answered. The requests run as tasks on an event loop in its own
thread (``LoopThread``), so the window keeps going while the engine cleans and commits a
batch. With the loop in the engine's thread (run only between commits), commits stopped it
9-15 % of the wall time at 256 in flight; interleaved runs of the ``bench_paraphrase.py``
sweep at 256 (2-core box, load 2.9) gave 0.79-0.80 of the ideal throughput with it there,
0.86-0.87 with it in its own thread. Memory is bounded: at most
``concurrency`` requests in flight, and at most ``concurrency + batch_size`` started and
not yet taken by the consumer (answers wait in a queue while the engine commits).
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

from paraclip_pipeline.paraphrase.backends.base import Completion

Answer = tuple[int, Completion]  # (request index, its completion)
T = TypeVar("T")


class LoopThread:
    """An event loop running forever in a daemon thread; coroutines are submitted to it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="paraphrase-requests", daemon=True
        )
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop and wait for its result in the calling thread."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class SlidingWindow:
    """Runs ``call(index)`` for ``index`` in ``range(count)``, ``concurrency`` at a time."""

    def __init__(
        self,
        count: int,
        call: Callable[[int], Awaitable[Completion]],
        *,
        concurrency: int,
        batch_size: int,
        max_wait_s: float,
    ) -> None:
        self._count = count
        self._call = call
        self._concurrency = concurrency
        self._batch_size = batch_size
        self._max_wait_s = max_wait_s
        self._taken = 0
        self._answers: queue.SimpleQueue[Answer | BaseException] = queue.SimpleQueue()
        self._held: asyncio.Semaphore | None = None
        self._task: asyncio.Task[None] | None = None
        self.in_flight = 0  # started and not yet answered
        self.peak_in_flight = 0

    @property
    def finished(self) -> bool:
        return self._taken == self._count

    async def run(self) -> None:
        """Loop side: start requests as slots free up; each answer goes to the queue."""
        self._task = asyncio.current_task()
        slots = asyncio.Semaphore(self._concurrency)
        # A batch being filled plus a full window: the consumer waits for batch_size answers.
        held = self._held = asyncio.Semaphore(self._concurrency + self._batch_size)
        tasks: set[asyncio.Task[Completion]] = set()

        def finish(index: int, task: asyncio.Task[Completion]) -> None:
            tasks.discard(task)
            self.in_flight -= 1
            slots.release()
            if not task.cancelled():
                error = task.exception()
                self._answers.put(error if error is not None else (index, task.result()))

        try:
            for index in range(self._count):
                await held.acquire()
                await slots.acquire()
                self.in_flight += 1
                self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
                task = asyncio.ensure_future(self._call(index))
                tasks.add(task)
                task.add_done_callback(lambda done, index=index: finish(index, done))
            while tasks:
                await asyncio.wait(set(tasks))
        except Exception as exc:  # the consumer is blocked on the queue: hand it the error
            self._answers.put(exc)
            raise
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _take(self, item: Answer | BaseException, batch: list[Answer]) -> None:
        if isinstance(item, BaseException):
            raise item
        batch.append(item)
        self._taken += 1

    def next_batch(self, loop: asyncio.AbstractEventLoop) -> list[Answer]:
        """Consumer side (the engine's thread): up to ``batch_size`` answers, at most
        ``max_wait_s`` after the first; blocks until there is one."""
        batch: list[Answer] = []
        self._take(self._answers.get(), batch)
        deadline = time.monotonic() + self._max_wait_s
        while len(batch) < self._batch_size and not self.finished:
            try:
                item = self._answers.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self._answers.get(timeout=remaining)
                except queue.Empty:
                    break
            self._take(item, batch)
        loop.call_soon_threadsafe(self._release, len(batch))
        return batch

    def _release(self, count: int) -> None:
        if self._held is not None:
            for _ in range(count):
                self._held.release()

    async def cancel(self) -> None:
        """Loop side: stop starting requests and cancel those in flight."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def run_in_batches(loop_thread: LoopThread, window: SlidingWindow) -> Iterator[list[Answer]]:
    """The window's answers, batch by batch; stopping early cancels what is still in flight."""
    running = asyncio.run_coroutine_threadsafe(window.run(), loop_thread.loop)
    try:
        while not window.finished:
            yield window.next_batch(loop_thread.loop)
        running.result()
    finally:
        if not running.done():
            loop_thread.run(window.cancel())
