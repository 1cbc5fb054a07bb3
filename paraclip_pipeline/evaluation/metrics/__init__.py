"""Metric modules kept in the repository and loaded by path with ``evaluate.load``.

``evaluate.load("spearmanr")`` would fetch a script from the Hugging Face hub, which
fails offline; a local directory ``<name>/<name>.py`` loads without any network.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import evaluate

METRICS_DIR = Path(__file__).resolve().parent
METRIC_NAMES = ("spearman", "rank_similarity", "recall_at_k")


@functools.cache
def load_metric(name: str) -> evaluate.EvaluationModule:
    """The repository's metric ``name``, loaded once per process, computed in memory."""
    if name not in METRIC_NAMES:
        raise ValueError(f"unknown metric {name!r}; available: {', '.join(METRIC_NAMES)}")
    import evaluate  # slow to import (pulls in datasets); only pay for it when scoring

    # keep_in_memory: no Arrow cache files or lock files under ~/.cache for each compute.
    return evaluate.load(str(METRICS_DIR / name), keep_in_memory=True)
