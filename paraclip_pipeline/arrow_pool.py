"""Which allocator Arrow uses in a pipeline process, in one place.

pyarrow's default pool (mimalloc) keeps the pages a batch freed for reuse, so a streaming
stage's resident set sits well above what Arrow holds, and creeps: through 2M captions of
stage 1 its floor rose from about 395 to 420 MB (RSS sampled every 50 ms). Arrow's
jemalloc pool with no decay hands the pages back on free, and the floor stays flat.
``bench_data_scale --sizes 100000,2000000``, the same code on each pool, side by side,
peak RSS at 100k / 2M captions: stage 1 408 / 476 -> 335 / 393 MB, stage 2 427 / 496 ->
355 / 413, filtered_pairs 565 / 582 -> 463 / 533, raw_captions 349 / 359 -> 313 / 326; no
slower (stage 1 at 2M: 139 s against 140 s). Training, 100k / 1M pairs: 1,183 / 1,289 ->
1,121 / 1,238 MB, its loader workers 714 / 719 -> 621 / 653 MB.

pyarrow fixes its default pool when it is first imported: ``ARROW_DEFAULT_MEMORY_POOL``
set later is ignored, and switching with ``pyarrow.set_memory_pool`` after the import did
not do it (stage 1 at 2M peaked at 485 MB, against 473 on mimalloc; which allocations
stayed on mimalloc was not traced). So ``use_jemalloc`` sets the variable, and runs when
this package is imported, before any of its modules imports pyarrow, then sets the decay:
one call, in the package's ``__init__``, covers every process that runs pipeline code (code
server, run workers, the CLI, Ray and torchrun workers). A value the operator set wins; on a
platform whose wheels lack jemalloc (macOS) it does nothing. Processes started elsewhere
that import pyarrow first (Ray workers) get the choice through ``worker_env``.
"""

from __future__ import annotations

import os
import sys

ARROW_POOL_ENV = "ARROW_DEFAULT_MEMORY_POOL"
POOL = "jemalloc"


def use_jemalloc() -> str:
    """Idempotent. Returns the pool's backend name: pyarrow's default where pyarrow was
    imported before this package (its pool is fixed by then) or an operator chose one."""
    if sys.platform == "linux" and "pyarrow" not in sys.modules:
        os.environ.setdefault(ARROW_POOL_ENV, POOL)
    import pyarrow as pa

    backend = pa.default_memory_pool().backend_name
    if backend == POOL:
        pa.jemalloc_set_decay_ms(0)  # freed pages go back at once (the default waits 1 s)
    return backend


def worker_env() -> dict[str, str]:
    """The pool's variable as this process has it (the package's choice or the operator's),
    for workers started on other nodes; empty where neither set one."""
    chosen = os.environ.get(ARROW_POOL_ENV)
    return {ARROW_POOL_ENV: chosen} if chosen else {}
