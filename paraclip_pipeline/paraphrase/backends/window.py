"""A sliding window of async requests, handed to synchronous code in commit-sized batches.

The engine is synchronous (it runs inside a Dagster op) and commits answers chunk by
chunk. Draining the window at every chunk boundary would let one slow answer (an LLM
server's 10x tail) idle every other slot, so the window is never drained: a new request
starts as soon as an answer is taken, and the requests live as tasks on one event loop
(an ``asyncio.Runner``) across the engine's commits. ``batches`` runs that loop only
until the next batch is ready (``batch_size`` answers, or ``max_wait_s`` after its first
answer), so the engine commits while the server keeps working on the rest of the
window. Memory is bounded: at most ``concurrency`` requests exist at once, counting the
answers not yet taken.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator

from paraclip_pipeline.paraphrase.backends.base import Completion

Answer = tuple[int, Completion]  # (request index, its completion)


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
        self._started = 0
        self._taken = 0
        self._done: asyncio.Queue[Answer] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Completion]] = set()
        self.in_flight = 0  # started and not yet taken by the consumer
        self.peak_in_flight = 0

    @property
    def finished(self) -> bool:
        return self._taken == self._count

    def _fill(self) -> None:
        while self.in_flight < self._concurrency and self._started < self._count:
            index = self._started
            self._started += 1
            self.in_flight += 1
            task = asyncio.ensure_future(self._call(index))
            self._tasks.add(task)
            task.add_done_callback(lambda done, index=index: self._finish(index, done))
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def _finish(self, index: int, task: asyncio.Task[Completion]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            self._done.put_nowait((index, task.result()))

    def _take(self, answer: Answer, batch: list[Answer]) -> None:
        batch.append(answer)
        self._taken += 1
        self.in_flight -= 1
        self._fill()

    async def next_batch(self) -> list[Answer]:
        self._fill()
        loop = asyncio.get_running_loop()
        batch: list[Answer] = []
        deadline: float | None = None
        while len(batch) < self._batch_size and not self.finished:
            if not self._done.empty():
                self._take(self._done.get_nowait(), batch)
            elif deadline is None:
                self._take(await self._done.get(), batch)
            else:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    self._take(await asyncio.wait_for(self._done.get(), remaining), batch)
                except TimeoutError:
                    break
            if deadline is None:
                deadline = loop.time() + self._max_wait_s
        return batch

    async def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def run_in_batches(runner: asyncio.Runner, window: SlidingWindow) -> Iterator[list[Answer]]:
    """The window's answers, batch by batch; stopping early cancels what is still in flight."""
    try:
        while not window.finished:
            yield runner.run(window.next_batch())
    finally:
        if not window.finished:
            runner.run(window.cancel())
