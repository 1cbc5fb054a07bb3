"""Public-benchmark records as a plain-text table, Markdown and a small HTML page.

A delta whose 95% interval contains 0 is marked with ``NOT_SIGNIFICANT``: on these
data the model cannot be told apart from its baseline on that metric. Records of
several seeds (``seeds`` key) add a column with their spread: the sample std and the
min-max of the seeds' scores, beside their mean in "model".
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from paraclip_pipeline.evaluation.public.suite import MODEL_STD_KEY, SEEDS_KEY

NOT_SIGNIFICANT = "~"
COLUMNS = ("file", "metric", "baseline", "model", "delta", "95% CI", "")
SEED_COLUMNS = ("file", "metric", "baseline", "model (mean)", "spread", "delta", "95% CI", "")


def contains_zero(record: dict[str, Any]) -> bool:
    return record["ci_low"] <= 0.0 <= record["ci_high"]


def several_seeds(records: Sequence[dict[str, Any]]) -> bool:
    return any(SEEDS_KEY in record for record in records)


def spread(record: dict[str, Any]) -> str:
    """``±std [min, max]`` of the seeds' scores; empty for a one-model record."""
    if SEEDS_KEY not in record:
        return ""
    scores = [entry["model"] for entry in record[SEEDS_KEY]]
    return f"±{record[MODEL_STD_KEY]:.2f} [{min(scores):.2f}, {max(scores):.2f}]"


def _file_cell(record: dict[str, Any]) -> str:
    subsample = record.get("subsample")
    return f"{record['file']} ({subsample.split(' (')[0]})" if subsample else record["file"]


def files_scored(records: Sequence[dict[str, Any]]) -> str:
    """Each file scored once, with its items and whether they are a subsample."""
    by_file: dict[str, str] = {}
    for record in records:
        by_file.setdefault(
            record["file"], record.get("subsample") or f"all {record.get('file_items', '?')} items"
        )
    return "; ".join(f"{name}: {how}" for name, how in by_file.items())


def _row(record: dict[str, Any], seeds: bool = False) -> list[str]:
    return [
        _file_cell(record),
        record["metric"],
        f"{record['baseline']:.2f}",
        f"{record['model']:.2f}",
        *([spread(record)] if seeds else []),
        f"{record['delta']:+.2f}",
        f"[{record['ci_low']:+.2f}, {record['ci_high']:+.2f}]",
        NOT_SIGNIFICANT if contains_zero(record) else "",
    ]


def _columns(seeds: bool) -> tuple[str, ...]:
    return SEED_COLUMNS if seeds else COLUMNS


LEGEND = (
    f"scores x100; {NOT_SIGNIFICANT} = the 95% paired-bootstrap interval of the delta contains 0"
)
SEEDS_LEGEND = (
    "; with several seeds, model = mean over seeds, spread = their sample std [min, max], "
    "and each resample of items scores every seed and averages them"
)


def legend(records: Sequence[dict[str, Any]]) -> str:
    return LEGEND + (SEEDS_LEGEND if several_seeds(records) else "")


def format_table(records: Sequence[dict[str, Any]]) -> str:
    """Aligned columns for a terminal."""
    seeds = several_seeds(records)
    columns = _columns(seeds)
    rows = [list(columns), *(_row(record, seeds) for record in records)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths).rstrip())
    return "\n".join([*lines, "", legend(records)])


def format_markdown(records: Sequence[dict[str, Any]]) -> str:
    seeds = several_seeds(records)
    header = "| " + " | ".join(_columns(seeds)) + " |"
    aligns = ["---", "---", "---:", "---:", *(["---:"] if seeds else []), "---:", "---", "---"]
    rule = "|" + "|".join(aligns) + "|"
    body = ["| " + " | ".join(_row(record, seeds)) + " |" for record in records]
    return "\n".join([header, rule, *body, "", legend(records)])


def html_table(records: Sequence[dict[str, Any]]) -> str:
    seeds = several_seeds(records)
    head = "".join(f"<th>{html.escape(name)}</th>" for name in _columns(seeds))
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in _row(record, seeds)) + "</tr>"
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
        f"<p>{html.escape(legend(records))}</p></body></html>"
    )
