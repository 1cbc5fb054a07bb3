"""Public-benchmark records as a plain-text table, Markdown and a small HTML page.

A delta whose 95% interval contains 0 is marked with ``NOT_SIGNIFICANT``: on these
data the model cannot be told apart from its baseline on that metric.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

NOT_SIGNIFICANT = "~"
COLUMNS = ("file", "metric", "baseline", "model", "delta", "95% CI", "")


def contains_zero(record: dict[str, Any]) -> bool:
    return record["ci_low"] <= 0.0 <= record["ci_high"]


def _row(record: dict[str, Any]) -> list[str]:
    return [
        record["file"],
        record["metric"],
        f"{record['baseline']:.2f}",
        f"{record['model']:.2f}",
        f"{record['delta']:+.2f}",
        f"[{record['ci_low']:+.2f}, {record['ci_high']:+.2f}]",
        NOT_SIGNIFICANT if contains_zero(record) else "",
    ]


LEGEND = (
    f"scores x100; {NOT_SIGNIFICANT} = the 95% paired-bootstrap interval of the delta contains 0"
)


def format_table(records: Sequence[dict[str, Any]]) -> str:
    """Aligned columns for a terminal."""
    rows = [list(COLUMNS), *(_row(record) for record in records)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths).rstrip())
    return "\n".join([*lines, "", LEGEND])


def format_markdown(records: Sequence[dict[str, Any]]) -> str:
    header = "| " + " | ".join(COLUMNS) + " |"
    rule = "|" + "|".join(["---", "---", "---:", "---:", "---:", "---", "---"]) + "|"
    body = ["| " + " | ".join(_row(record)) + " |" for record in records]
    return "\n".join([header, rule, *body, "", LEGEND])


def html_table(records: Sequence[dict[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(name)}</th>" for name in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in _row(record)) + "</tr>"
        for record in records
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(records: Sequence[dict[str, Any]], title: str, context: dict[str, str]) -> str:
    facts = "".join(
        f"<li>{html.escape(key)}: {html.escape(value)}</li>" for key, value in context.items()
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><ul>{facts}</ul>{html_table(records)}"
        f"<p>{html.escape(LEGEND)}</p></body></html>"
    )
