"""The report's PNG plots: deltas per averaged metric and per-query AO@k histograms."""

from __future__ import annotations

import io

import numpy as np
from matplotlib.figure import Figure

from paraclip_pipeline.evaluation.report_rows import AVERAGE_TASK, ComparisonRow, pair_results
from paraclip_pipeline.evaluation.results import SuiteResult

HISTOGRAM_BINS = np.linspace(0.0, 1.0, 21)


def _png_bytes(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    # No "Software" stamp: identical results give byte-identical PNGs on rerun.
    figure.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    return buffer.getvalue()


def deltas_plot(rows: list[ComparisonRow]) -> bytes | None:
    """Horizontal bars: fine-tuned minus baseline of every averaged metric, x 100."""
    averaged = [row for row in rows if row.task == AVERAGE_TASK and row.delta is not None]
    if not averaged:
        return None
    labels = [f"{row.benchmark}\n{row.metric}" for row in averaged]
    deltas = [row.delta * 100 for row in averaged if row.delta is not None]
    figure = Figure(figsize=(8, 0.6 * len(averaged) + 1.5), layout="constrained")
    axes = figure.subplots()
    colours = ["tab:green" if delta >= 0 else "tab:red" for delta in deltas]
    positions = np.arange(len(averaged))
    axes.barh(positions, deltas, color=colours)
    axes.set_yticks(positions, labels, fontsize=8)
    axes.invert_yaxis()
    axes.axvline(0.0, color="black", linewidth=0.8)
    axes.set_xlabel("fine-tuned − baseline (× 100)")
    axes.set_title("Change per benchmark (averaged metrics)")
    return _png_bytes(figure)


def distribution_plot(baseline: SuiteResult, finetuned: SuiteResult) -> bytes | None:
    """Histograms of per-query AO@k (largest k), baseline vs fine-tuned, one panel per task."""
    k = max(baseline.rank_ks)
    suffix = f" AO@{k}"
    panels = []
    for _, base, tuned in pair_results(baseline, finetuned):
        if base is None or tuned is None:
            continue
        for key, values in base.distributions.items():
            if key.endswith(suffix) and key in tuned.distributions:
                panels.append((f"{base.title}\n{key}", values, tuned.distributions[key]))
    if not panels:
        return None
    figure = Figure(figsize=(6 * len(panels), 4), layout="constrained")
    for axes, (label, before, after) in zip(
        np.atleast_1d(figure.subplots(1, len(panels))), panels, strict=True
    ):
        for name, values in (("baseline", before), ("fine-tuned", after)):
            label_with_mean = f"{name} (mean {np.mean(values):.3f})"
            axes.hist(values, bins=HISTOGRAM_BINS, alpha=0.55, label=label_with_mean)
        axes.set_title(label, fontsize=9)
        axes.set_xlabel(f"AO@{k} per query")
        axes.set_ylabel("queries")
        axes.legend(fontsize=8)
    return _png_bytes(figure)
