"""A k-way merge of Arrow streams that are each sorted on one column, in bounded memory.

The paraphrase cache needs two merges that must not hold their input: compaction merges
key-sorted chunk files and segments into one segment, and a shard lookup merges its
key-range buckets (each sorted by row position) back into row order. Both were DuckDB
``ORDER BY`` queries; a sort holds or spills its whole input, and under a memory limit
small enough to keep a stage's peak flat (64-96 MB) DuckDB's sort and window operators
ran out of memory on 1M rows. Here the inputs are already sorted, so each input holds
only its current batch or two: memory is the inputs' batch sizes times their number.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc


class _Run:
    """One sorted input and its buffered rows (None once it has none left)."""

    def __init__(self, tables: Iterable[pa.Table], column: str) -> None:
        self._tables = iter(tables)
        self._column = column
        self.buffer: pa.Table | None = None
        self.running = True
        self.pull()

    def pull(self) -> None:
        """Append the next non-empty table to the buffer, or mark the input finished."""
        for table in self._tables:
            if table.num_rows:
                parts = [table] if self.buffer is None else [self.buffer, table]
                self.buffer = pa.concat_tables(parts)
                return
        self.running = False

    def last(self) -> object:
        assert self.buffer is not None
        return self.buffer.column(self._column)[-1].as_py()

    def take_below(self, bound: object) -> pa.Table | None:
        """The buffered rows whose value is below ``bound``, removed from the buffer."""
        if self.buffer is None:
            return None
        count = pc.sum(pc.less(self.buffer.column(self._column), bound)).as_py() or 0
        taken = self.buffer.slice(0, count)
        rest = self.buffer.slice(count)
        self.buffer = rest if rest.num_rows else None
        return taken if count else None


def merge_sorted(
    inputs: Sequence[Iterable[pa.Table]], sort_keys: Sequence[tuple[str, str]]
) -> Iterator[pa.Table]:
    """The rows of ``inputs`` in ``sort_keys`` order, as a stream of tables.

    Each input must be ascending on ``sort_keys[0]`` (its merge column); the other keys
    break ties. All rows sharing a merge value come out in the same table, so a caller
    can pick one row per value table by table. Only rows below the smallest last
    buffered value of the inputs still running leave: every later row is at least that.
    """
    column = sort_keys[0][0]
    runs = [_Run(tables, column) for tables in inputs]
    while True:
        for run in runs:
            if run.running and run.buffer is None:
                run.pull()
        running = [run for run in runs if run.running]
        if not running:
            rest = [run.buffer for run in runs if run.buffer is not None]
            if rest:
                yield pa.concat_tables(rest).sort_by(list(sort_keys))
            return
        bound = min(run.last() for run in running)
        taken = [table for run in runs if (table := run.take_below(bound)) is not None]
        if taken:
            yield pa.concat_tables(taken).sort_by(list(sort_keys))
        else:  # every row left is at the bound or above: read past it
            for run in running:
                if run.last() == bound:
                    run.pull()
