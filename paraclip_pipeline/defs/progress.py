"""A heartbeat for long steps: something in the run's events at least every 30 s.

Encoding, evaluation and training report progress through a ``log`` callback when they
have something to say, but a single STS encode or a slow training step can be silent for
minutes (the report step once printed nothing for 11 minutes). The heartbeat forwards
every message and, when none came for ``every_s``, repeats the last one with the time
elapsed, so an operator watching the run can tell slow from stuck.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

HEARTBEAT_S = 30.0


class Heartbeat:
    def __init__(self, log: Callable[[str], None], what: str, every_s: float) -> None:
        self._log = log
        self._what = what
        self._every_s = every_s
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._last_time = self._started
        self._last = "started"
        self._stop = threading.Event()

    def __call__(self, message: str) -> None:
        with self._lock:
            self._last, self._last_time = message, time.monotonic()
        self._log(message)

    def _beat(self) -> None:
        while not self._stop.wait(self._every_s / 4):
            now = time.monotonic()
            with self._lock:
                quiet = now - self._last_time >= self._every_s
                if quiet:
                    self._last_time = now
                last = self._last
            if quiet:
                self._log(f"{self._what}: running for {now - self._started:.0f} s (last: {last})")


@contextmanager
def heartbeat(
    log: Callable[[str], None], what: str, every_s: float = HEARTBEAT_S
) -> Iterator[Heartbeat]:
    """``with heartbeat(context.log.info, "training") as progress: train(log=progress)``."""
    beat = Heartbeat(log, what, every_s)
    thread = threading.Thread(target=beat._beat, name=f"heartbeat-{what}", daemon=True)
    thread.start()
    try:
        yield beat
    finally:
        beat._stop.set()
        thread.join()
