"""One cache lookup per shard: the shard's keys on disk, then its answers by row position.

``StageRun.process_shard`` streams the shard twice: once to write the text of every row
that needs an answer (``PositionsWriter``), then, after one ``ParaphraseCache.lookup_shard``
has written each such row's key and cached answer sorted by row position, batch by batch
against that file (``HitStream``: a batch's rows are the file's next rows; ``ShardLookup``
looks a shard over ``LOOKUP_SLICE_ROWS`` rows up a slice at a time). The keys are hashed
by DuckDB inside the lookup, so neither pass hashes a text in Python. Both files live in a
temporary directory; neither pass holds more than a batch (plus the answers of this run
that a later batch repeats, dropped after their last row) in Python.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from paraclip_pipeline.paraphrase.cache import ParaphraseCache
from paraclip_pipeline.paraphrase.cache_files import HIT_COLUMNS, INPUT_TEXT, KEY, CacheHit
from paraclip_pipeline.paraphrase.cache_lookup import FOUND, LAST_POSITION, POSITION, STALE_ANSWER
from paraclip_pipeline.storage import ParquetTable

POSITIONS_SCHEMA = pa.schema(
    [
        pa.field(POSITION, pa.int64(), nullable=False),
        pa.field(INPUT_TEXT, pa.string(), nullable=False),
    ]
)
HIT_READ_ROWS = 1 << 16
# Rows of a shard looked up in one pass: a 1M-caption shard is one lookup of 16 key
# ranges. A bigger shard is looked up a slice at a time, each slice when the stream
# reaches it (so it finds what this run committed before it), because the merge of a
# slice's ranges holds a few thousand rows per range (``cache_lookup.MERGE_READ_ROWS``).
LOOKUP_SLICE_ROWS = 1 << 20


class PositionsWriter:
    """Writes (row position, input text) for each row of the shard that needs an answer."""

    def __init__(self, path: Path) -> None:
        self._writer = pq.ParquetWriter(path, POSITIONS_SCHEMA)
        self.rows = 0  # shard rows seen so far, with or without a text

    def write(self, inputs: Sequence[str | None]) -> None:
        texts = pa.array(inputs, pa.string())
        positions = pa.array(np.arange(self.rows, self.rows + len(texts), dtype=np.int64))
        self.rows += len(texts)
        wanted = pc.is_valid(texts)
        table = pa.table({POSITION: positions, INPUT_TEXT: texts}).filter(wanted)
        self._writer.write_table(table.cast(POSITIONS_SCHEMA))

    def close(self) -> None:
        self._writer.close()


@dataclass
class BatchHits:
    """What the shard lookup found for one batch's rows that need an answer."""

    keys: list[str]  # of those rows, in order
    answers: dict[str, CacheHit]
    stale_raw: dict[str, str]  # raw answers cached under older hygiene rules
    repeated_until: dict[str, int]  # uncached keys a later batch repeats -> their last row


class HitStream:
    """The rows of ``lookup_shard``'s output, handed out batch by batch in shard order."""

    def __init__(self, path: Path) -> None:
        # Row group by row group: ``iter_batches`` over the whole file read ahead and held
        # the hits of a 1M-row shard (Arrow's live memory 65 -> 140 MB over stage 1's run).
        hits = ParquetTable(str(path))
        self._batches: Iterator[pa.RecordBatch] = hits.batches(HIT_READ_ROWS)
        self._buffer: pa.Table = hits.schema.empty_table()
        self._exhausted = False

    def close(self) -> None:
        self._batches = iter(())  # drops the reading generator, which closes its file

    def _rows_before(self, end: int) -> pa.Table:
        """The buffered and next rows whose position is below ``end``."""
        parts = [self._buffer]
        while not self._exhausted and (
            parts[-1].num_rows == 0 or parts[-1].column(POSITION)[-1].as_py() < end
        ):
            batch = next(self._batches, None)
            if batch is None:
                self._exhausted = True
            else:
                parts.append(pa.Table.from_batches([batch]))
        table = pa.concat_tables(parts)
        count = pc.sum(pc.less(table.column(POSITION), end)).as_py() or 0
        self._buffer = table.slice(count)
        return table.slice(0, count)

    def take(self, end: int) -> BatchHits:
        """What was found for the rows before ``end`` not yet taken (the next batch's)."""
        rows = self._rows_before(end)
        found = rows.filter(rows.column(FOUND))
        found_keys = found.column(KEY).to_pylist()
        values = zip(*(found.column(name).to_pylist() for name in HIT_COLUMNS), strict=True)
        stale = found.filter(pc.is_valid(found.column(STALE_ANSWER)))
        repeated = rows.filter(
            pc.and_(
                pc.invert(rows.column(FOUND)), pc.greater_equal(rows.column(LAST_POSITION), end)
            )
        )
        return BatchHits(
            keys=rows.column(KEY).to_pylist(),
            answers={key: CacheHit(*hit) for key, hit in zip(found_keys, values, strict=True)},
            stale_raw=dict(
                zip(
                    stale.column(KEY).to_pylist(),
                    stale.column(STALE_ANSWER).to_pylist(),
                    strict=True,
                )
            ),
            repeated_until=dict(
                zip(
                    repeated.column(KEY).to_pylist(),
                    repeated.column(LAST_POSITION).to_pylist(),
                    strict=True,
                )
            ),
        )


class ShardLookup:
    """A shard's hits, batch by batch: one ``lookup_shard`` per ``LOOKUP_SLICE_ROWS`` rows."""

    def __init__(
        self, cache: ParaphraseCache, positions: Path, work_dir: Path, version: str
    ) -> None:
        self._cache, self._positions, self._work_dir = cache, positions, work_dir
        self._version = version
        self._stream: HitStream | None = None
        self._path: Path | None = None
        self._end = 0  # the rows looked up so far end here

    def take(self, start: int, end: int) -> BatchHits:
        """The hits of shard rows ``start`` to ``end`` (the next batch)."""
        if self._stream is None or end > self._end:
            self.close()
            self._end = max(end, start + LOOKUP_SLICE_ROWS)
            self._path = self._work_dir / f"hits-{start}.parquet"
            self._cache.lookup_shard(self._positions, (start, self._end), self._path, self._version)
            self._stream = HitStream(self._path)
        return self._stream.take(end)

    def close(self) -> None:
        if self._stream is not None and self._path is not None:
            self._stream.close()
            self._path.unlink()
            self._stream = None
