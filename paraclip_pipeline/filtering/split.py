"""Deterministic train / validation / test split of kept pairs, by a hash of the caption text.

Let ``u`` be the first 64 bits of ``md5(salt + ":" + normalised caption)`` read as an
unsigned integer (the normalisation of ``features.normalised_text``: case, punctuation
and spacing folded). A row is ``test`` when ``u < test_fraction * 2**64``, else
``validation`` when ``u < (test_fraction + validation_fraction) * 2**64``, else
``train``. Hashing the *text*, not the caption_id, puts every copy of one caption (in
any shard, in any case or punctuation) on one side, so the test rows never share a
caption with the trained ones (issue 12: held-out rows differed from trained rows by id
only). md5 (via DuckDB, vectorised) is used for its stable, uniform bits, not for
security; comparing the 16-hex-digit prefix as text is the integer comparison, since both
sides have the same width.
"""

from __future__ import annotations

import duckdb
import polars as pl
import pyarrow as pa

from paraclip_pipeline import schema
from paraclip_pipeline.filtering.features import normalised_text

_HASH_BITS = 64
_NORMALISED = "normalised"


def _threshold_hex(fraction: float) -> str | None:
    """16 hex digits of ``fraction * 2**64``, or None when every hash falls below it."""
    threshold = round(fraction * 2**_HASH_BITS)
    return None if threshold >= 2**_HASH_BITS else f"{threshold:016x}"


def assign_split(
    texts: pa.Array | pa.ChunkedArray,
    *,
    validation_fraction: float,
    test_fraction: float,
    salt: str,
) -> pa.Array:
    """``train``, ``validation`` or ``test`` for each caption text (same order)."""
    for name, value in (
        ("validation_fraction", validation_fraction),
        ("test_fraction", test_fraction),
    ):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be within [0, 1], got {value}")
    if validation_fraction + test_fraction > 1.0:
        raise ValueError(
            f"validation_fraction + test_fraction must be at most 1, got "
            f"{validation_fraction} + {test_fraction}"
        )
    frame = pl.DataFrame({"text": pl.from_arrow(texts).cast(pl.String)})
    normalised = frame.select(normalised_text(pl.col("text")).alias(_NORMALISED)).to_arrow()
    sides = [
        (schema.TEST, _threshold_hex(test_fraction)),
        (schema.VALIDATION, _threshold_hex(test_fraction + validation_fraction)),
    ]
    cases = " ".join(
        f"WHEN {'TRUE' if bound is None else 'h < ?'} THEN '{side}'" for side, bound in sides
    )
    # Positional parameters in the order they appear in the query: the bounds, then the salt.
    parameters = [*(bound for _, bound in sides if bound is not None), salt]
    with duckdb.connect() as connection:
        # The result must line up with the input rows (DuckDB's default, made explicit).
        connection.execute("SET preserve_insertion_order = true")
        connection.register("texts", normalised)
        query = (
            f"SELECT CASE {cases} ELSE '{schema.TRAIN}' END AS split FROM "
            f"(SELECT left(md5(? || ':' || {_NORMALISED}), 16) AS h FROM texts)"
        )
        result = connection.execute(query, parameters).to_arrow_table()
    return result.column("split").combine_chunks().cast(pa.string())
