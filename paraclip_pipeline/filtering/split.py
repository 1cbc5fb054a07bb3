"""Deterministic train / held-out split of kept pairs, by a hash of caption_id.

A row is held out when the first 64 bits of ``md5(salt + ":" + caption_id)``, read as an
unsigned integer, fall below ``heldout_fraction * 2**64``. The split depends on nothing
but the id and the salt, so a row keeps its side across reruns, rule changes and
shards; md5 (via DuckDB, vectorised) is used for its stable, uniform bits, not for
security. Comparing the 16-hex-digit prefix as text is the integer comparison, since
both sides have the same width.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

TRAIN = "train"
HELDOUT = "heldout"
_HASH_BITS = 64


def heldout_threshold(heldout_fraction: float) -> int:
    return round(heldout_fraction * 2**_HASH_BITS)


def assign_split(
    caption_ids: pa.Array | pa.ChunkedArray, heldout_fraction: float, salt: str
) -> pa.Array:
    """ "train" or "heldout" for each caption id (same order)."""
    if not 0.0 <= heldout_fraction <= 1.0:
        raise ValueError(f"heldout_fraction must be within [0, 1], got {heldout_fraction}")
    threshold = heldout_threshold(heldout_fraction)
    ids = pa.table({"caption_id": caption_ids})
    with duckdb.connect() as connection:
        # The result must line up with the input rows (DuckDB's default, made explicit).
        connection.execute("SET preserve_insertion_order = true")
        connection.register("ids", ids)
        if threshold >= 2**_HASH_BITS:
            query = f"SELECT '{HELDOUT}' AS split FROM ids"
            parameters: list[object] = []
        else:
            query = (
                f"SELECT CASE WHEN left(md5(? || ':' || caption_id), 16) < ? "
                f"THEN '{HELDOUT}' ELSE '{TRAIN}' END AS split FROM ids"
            )
            parameters = [salt, f"{threshold:016x}"]
        result = connection.execute(query, parameters).to_arrow_table()
    return result.column("split").combine_chunks().cast(pa.string())
