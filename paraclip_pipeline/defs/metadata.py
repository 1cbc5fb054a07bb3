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


UNUSABLE_IMAGES_KEY = "unusable_images"
_IMAGE_EXAMPLES = 5


def report_unusable_images(
    context: dg.AssetExecutionContext, counts: Mapping[str, int], examples: Sequence[str]
) -> dict[str, dg.MetadataValue]:
    """Count rows whose image cannot be used, by reason, and say so ONCE as a run event.

    A shard whose image paths all fail trains with L1 switched off; a warning in the
    run's event log (not on the code server's stderr) is where an operator sees it.
    Returns the metadata entry for the asset's output.
    """
    total = sum(counts.values())
    if total:
        by_reason = ", ".join(f"{count} {reason}" for reason, count in counts.items() if count)
        context.log.warning(
            f"shard {context.partition_key}: {total} row(s) have no usable image "
            f"({by_reason}), e.g. {'; '.join(examples[:_IMAGE_EXAMPLES])}"
        )
    return {UNUSABLE_IMAGES_KEY: dg.MetadataValue.json(dict(counts))}
