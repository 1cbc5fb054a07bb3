"""A DuckDB bounded in memory and threads that spills to disk: the one the streaming stages'
range-at-a-time queries run on (cache lookups, the filter's caption-id ranges).

DuckDB's defaults are 80 % of RAM and a thread per core. Each caller names its own limit
and threads, measured for its queries; what they share is set here once.
"""

from __future__ import annotations

from pathlib import Path

import duckdb


def bounded_connection(
    memory_limit: str, threads: int, spill_dir: Path
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB at ``memory_limit`` on ``threads`` threads, spilling to
    ``spill_dir``. Its external file cache is off: it keeps the bytes of every Parquet file
    a query reads (16 range files of a 1M-row shard read one after the other grew the
    process by 6 MB a range), for reads that never repeat here."""
    connection = duckdb.connect(
        config={
            "memory_limit": memory_limit,
            "threads": threads,
            "temp_directory": str(spill_dir),
            "preserve_insertion_order": False,
            "enable_external_file_cache": False,
        }
    )
    connection.execute("SET enable_progress_bar = false")
    return connection
