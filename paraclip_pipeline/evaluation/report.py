"""Baseline vs fine-tuned report: Markdown, self-contained HTML, results JSON and PNG plots.

Numbers in the tables are the raw scores x 100 (Spearman x 100, accuracies, recalls and
rank similarities in percent); ``results.json`` and ``headline`` keep the raw values.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from paraclip_pipeline.evaluation.errors import ReportError
from paraclip_pipeline.evaluation.public import render as public_render
from paraclip_pipeline.evaluation.report_plots import deltas_plot, distribution_plot
from paraclip_pipeline.evaluation.report_rows import (
    ComparisonRow,
    comparison_rows,
    headline_numbers,
    pair_results,
    seed_headline_std,
    with_seed_values,
)
from paraclip_pipeline.evaluation.results import SuiteResult
from paraclip_pipeline.storage import write_bytes_atomic, write_text_atomic

MARKDOWN_NAME = "report.md"
HTML_NAME = "report.html"
RESULTS_NAME = "results.json"
DELTAS_PLOT_NAME = "deltas.png"
DISTRIBUTION_PLOT_NAME = "rank_similarity_distribution.png"
SPREAD_COLUMN = "Spread over seeds (±std [min, max])"
PUBLIC_TITLE = "Public benchmarks (baseline vs fine-tuned, paired bootstrap 95% CI)"


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    html: Path
    results_json: Path
    plots: list[Path]
    summary_table_markdown: str
    headline: dict[str, float]


def _percent(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value * 100:+.2f}" if signed else f"{value * 100:.2f}"


def _spread(row: ComparisonRow) -> str:
    """``±std [min, max]`` of the seeds' fine-tuned scores, x 100."""
    if row.seed_std is None:
        return "—"
    low, high = min(row.seed_values), max(row.seed_values)
    return f"±{row.seed_std * 100:.2f} [{low * 100:.2f}, {high * 100:.2f}]"


def _table_cells(rows: list[ComparisonRow]) -> tuple[list[str], list[list[str]]]:
    seeds = any(row.seed_values for row in rows)
    header = ["Benchmark", "Task", "Metric", "Baseline", "Fine-tuned", "Δ"]
    if seeds:
        header[4:5] = ["Fine-tuned (mean)", SPREAD_COLUMN]
    body = [
        [
            row.benchmark,
            row.task,
            row.metric,
            _percent(row.baseline),
            _percent(row.finetuned),
            *([_spread(row)] if seeds else []),
            _percent(row.delta, signed=True),
        ]
        for row in rows
    ]
    return header, body


def markdown_table(rows: list[ComparisonRow]) -> str:
    header, body = _table_cells(rows)

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    divider = "|" + "|".join(["---"] * 3 + ["---:"] * (len(header) - 3)) + "|"
    return "\n".join([line(header), divider, *(line(cells) for cells in body)])


def html_table(rows: list[ComparisonRow]) -> str:
    header, body = _table_cells(rows)
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    lines = [
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells) + "</tr>"
        for cells in body
    ]
    return "\n".join(
        ["<table>", f"<thead><tr>{head}</tr></thead>", "<tbody>", *lines, "</tbody>", "</table>"]
    )


def _absent_lines(baseline: SuiteResult, finetuned: SuiteResult) -> list[str]:
    lines = []
    for _, base, tuned in pair_results(baseline, finetuned):
        for label, result in (("baseline", base), ("fine-tuned", tuned)):
            if result is not None and result.status == "absent":
                lines.append(f"{result.title} ({label}): absent — {'; '.join(result.notes)}")
            elif result is not None and result.absent_tasks:
                lines.append(
                    f"{result.title} ({label}): task(s) absent: {', '.join(result.absent_tasks)}"
                )
    return list(dict.fromkeys(lines))


def _benchmark_notes(baseline: SuiteResult, finetuned: SuiteResult) -> list[str]:
    notes = []
    for _, base, tuned in pair_results(baseline, finetuned):
        for result in (base, tuned):
            if result is not None and result.status == "ok":
                notes.extend(f"{result.title}: {note}" for note in result.notes)
    return list(dict.fromkeys(notes))


def _row_json(row: ComparisonRow) -> dict[str, Any]:
    values = asdict(row) | {"delta": row.delta}
    if not row.seed_values:  # one seed: the summary rows as they always were
        del values["seed_values"]
    return values


def _json_safe(value: Any) -> Any:
    """NaN/inf become null, so results.json is strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


def render_report(
    baseline: SuiteResult,
    finetuned: SuiteResult,
    out_dir: Path,
    *,
    title: str,
    notes: list[str],
    context: dict[str, str],
    public_benchmarks: list[dict[str, Any]] | None = None,
    seed_results: Sequence[SuiteResult] = (),
) -> ReportFiles:
    """Write report.md, report.html (PNGs inlined), results.json and the PNGs into ``out_dir``.

    ``public_benchmarks`` are the records of ``public.suite.run_public_benchmarks``
    (baseline, model, delta and its interval per file and metric), shown in their own
    section when given. With several training seeds, ``finetuned`` is their mean
    (``report_rows.mean_suite``) and ``seed_results`` each seed's own result: the tables
    gain a spread column (sample std and min-max over the seeds), the headline a
    ``<stem>_finetuned_std`` per averaged metric, results.json a ``finetuned_seeds`` list.
    """
    if baseline.rank_ks != finetuned.rank_ks:
        raise ReportError(
            f"baseline was scored at k={baseline.rank_ks} but fine-tuned at k={finetuned.rank_ks}; "
            "run both with the same EvaluationConfig"
        )
    out_dir = Path(out_dir)
    summary_rows = with_seed_values(
        comparison_rows(baseline, finetuned, summary=True), baseline, seed_results, summary=True
    )
    all_rows = with_seed_values(
        comparison_rows(baseline, finetuned, summary=False), baseline, seed_results, summary=False
    )
    summary = markdown_table(summary_rows)
    headline = headline_numbers(baseline, finetuned) | seed_headline_std(baseline, seed_results)
    plots = {
        DELTAS_PLOT_NAME: (deltas_plot(summary_rows), "Change per benchmark"),
        DISTRIBUTION_PLOT_NAME: (
            distribution_plot(baseline, finetuned),
            "Rank similarity per query, baseline vs fine-tuned",
        ),
    }
    written_plots = [
        write_bytes_atomic(png, out_dir / name) for name, (png, _) in plots.items() if png
    ]
    absent = _absent_lines(baseline, finetuned)
    benchmark_notes = _benchmark_notes(baseline, finetuned)

    markdown_parts = [f"# {title}", ""]
    markdown_parts += [f"- **{key}**: {value}" for key, value in context.items()]
    markdown_parts += ["", "All scores × 100 (Spearman × 100; accuracy, recall, AO@k, JS@k in %)."]
    if notes:
        markdown_parts += ["", "## Notes", "", *(f"- {note}" for note in notes)]
    markdown_parts += ["", "## Summary (headline averages)", "", summary]
    markdown_parts += ["", "## All benchmarks and tasks", "", markdown_table(all_rows)]
    if public_benchmarks:
        markdown_parts += [
            "",
            f"## {PUBLIC_TITLE}",
            "",
            public_render.format_markdown(public_benchmarks),
        ]
    if absent:
        markdown_parts += ["", "## Absent", "", *(f"- {line}" for line in absent)]
    if benchmark_notes:
        markdown_parts += ["", "## Benchmark details", ""]
        markdown_parts += [f"- {note}" for note in benchmark_notes]
    markdown_parts += [""]
    for name, (png, caption) in plots.items():
        if png:
            markdown_parts += [f"![{caption}]({name})", ""]
    markdown = "\n".join(markdown_parts)

    def html_list(items: list[str]) -> str:
        return "<ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in items) + "</ul>"

    html_parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;"
        "padding:3px 8px}td:nth-child(n+4){text-align:right}img{max-width:100%}</style>",
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
        html_list([f"{key}: {value}" for key, value in context.items()]),
        "<p>All scores × 100 (Spearman × 100; accuracy, recall, AO@k, JS@k in %).</p>",
    ]
    if notes:
        html_parts += ["<h2>Notes</h2>", html_list(notes)]
    html_parts += ["<h2>Summary (headline averages)</h2>", html_table(summary_rows)]
    html_parts += ["<h2>All benchmarks and tasks</h2>", html_table(all_rows)]
    if public_benchmarks:
        html_parts += [f"<h2>{PUBLIC_TITLE}</h2>", public_render.html_table(public_benchmarks)]
        html_parts.append(f"<p>{html.escape(public_render.legend(public_benchmarks))}</p>")
    if absent:
        html_parts += ["<h2>Absent</h2>", html_list(absent)]
    if benchmark_notes:
        html_parts += ["<h2>Benchmark details</h2>", html_list(benchmark_notes)]
    for png, caption in plots.values():
        if png:
            encoded = base64.b64encode(png).decode("ascii")
            html_parts.append(
                f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{encoded}">'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
    html_parts.append("</body></html>")

    results = {
        "title": title,
        "context": context,
        "notes": notes,
        "headline": headline,
        "summary": [_row_json(row) for row in summary_rows],
        "baseline": baseline.to_dict(),
        "finetuned": finetuned.to_dict(),
        "public_benchmarks": public_benchmarks or [],
    }
    if len(seed_results) > 1:
        results["finetuned_seeds"] = [seed.to_dict() for seed in seed_results]
    results_path = write_text_atomic(
        json.dumps(_json_safe(results), indent=1, allow_nan=False), out_dir / RESULTS_NAME
    )
    markdown_path = write_text_atomic(markdown, out_dir / MARKDOWN_NAME)
    html_path = write_text_atomic("\n".join(html_parts), out_dir / HTML_NAME)
    return ReportFiles(
        markdown=markdown_path,
        html=html_path,
        results_json=results_path,
        plots=written_plots,
        summary_table_markdown=summary,
        headline=headline,
    )
