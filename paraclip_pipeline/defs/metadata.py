"""Small helpers that turn plain results into Dagster metadata values."""

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
import pyarrow as pa


def table_preview(table: pa.Table, columns: Sequence[str], rows: int = 5) -> dg.MetadataValue:
    """First rows of ``table`` as a Dagster table, rendered natively by the UI."""
    head = table.select(list(columns)).slice(0, rows).to_pylist()
    return records_table(head, columns)


def records_table(records: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> dg.MetadataValue:
    table_schema = dg.TableSchema(columns=[dg.TableColumn(name, "string") for name in columns])
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord({name: _cell(record.get(name)) for name in columns})
            for record in records
        ],
        schema=table_schema,
    )


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= 200 else text[:197] + "..."
