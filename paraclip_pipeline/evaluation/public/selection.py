"""Which benchmark files are scored, and how many items of each (``PARACLIP_EVAL_FILES``,
``PARACLIP_EVAL_MAX_ITEMS``, ``paraclip evaluate --files/--max-items``).

The whole shared ``data/eval`` (~45k distinct texts) takes ~10 minutes per report on 2
cores; the demo scores the dev files with a per-file cap instead. A capped file is a
deterministic subsample (the first N images of caption groups, so every query keeps its
whole group; a seeded sample of N items elsewhere), and every record scored on one
says "subsample of N of M", so nobody mistakes it for the full benchmark.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from paraclip_pipeline.evaluation.errors import BenchmarkDataError
from paraclip_pipeline.evaluation.public.formats.caption_groups import CaptionGroups
from paraclip_pipeline.evaluation.public.formats.labelled_pairs import LabelledPairs
from paraclip_pipeline.evaluation.public.formats.sugarcrepe_pp import SugarCrepeItems
from paraclip_pipeline.evaluation.sts import StsPairs

SAMPLE_SEED = 0


@dataclass(frozen=True)
class Selection:
    """``patterns``: globs relative to the data directory (a directory name selects the files
    under it); empty selects every file. ``max_items``: per-file cap; None scores all."""

    patterns: tuple[str, ...] = ()
    max_items: int | None = None

    def __post_init__(self) -> None:
        if self.max_items is not None and self.max_items < 1:
            raise ValueError(f"max items must be at least 1, got {self.max_items}")

    def describe(self) -> str:
        files = ", ".join(self.patterns) if self.patterns else "all"
        items = f"at most {self.max_items} items per file" if self.max_items else "all items"
        return f"files: {files}; {items}"


def matches(relative: str, pattern: str) -> bool:
    pattern = pattern.strip().rstrip("/")
    return fnmatch.fnmatchcase(relative, pattern) or fnmatch.fnmatchcase(relative, f"{pattern}/*")


def select_files(
    found: Sequence[tuple[str, Path]], data_dir: Path, patterns: Sequence[str]
) -> list[tuple[str, Path]]:
    """The (benchmark, path) pairs matching any pattern; a pattern matching none is an error
    (a typo would otherwise silently drop a benchmark)."""
    if not patterns:
        return list(found)
    relative = [path.relative_to(data_dir).as_posix() for _, path in found]
    unmatched = [p for p in patterns if not any(matches(rel, p) for rel in relative)]
    if unmatched:
        raise BenchmarkDataError(
            data_dir,
            f"file pattern(s) {', '.join(map(repr, unmatched))} match no benchmark file "
            f"(found: {', '.join(relative) or 'none'})",
        )
    return [
        item
        for item, rel in zip(found, relative, strict=True)
        if any(matches(rel, p) for p in patterns)
    ]


def _first_images(groups: CaptionGroups, count: int) -> CaptionGroups:
    return dataclasses.replace(groups, captions=groups.captions[: count * groups.group_size])


def _sampled(fields: tuple[str, ...]) -> Callable[[Any, int], Any]:
    def sample(data: Any, count: int) -> Any:
        total = len(getattr(data, fields[0]))
        rows = np.sort(np.random.default_rng(SAMPLE_SEED).choice(total, count, replace=False))
        values = {}
        for name in fields:
            column = getattr(data, name)
            values[name] = (
                column[rows] if isinstance(column, np.ndarray) else [column[i] for i in rows]
            )
        return dataclasses.replace(data, **values)

    return sample


# benchmark data type -> (what an item is, item count, subsample to N items)
SUBSAMPLERS: dict[type, tuple[str, Callable[[Any], int], Callable[[Any, int], Any]]] = {
    CaptionGroups: ("images", lambda groups: groups.image_count, _first_images),
    SugarCrepeItems: (
        "items",
        lambda items: len(items.caption),
        _sampled(("caption", "caption2", "negative")),
    ),
    LabelledPairs: (
        "pairs",
        lambda pairs: len(pairs.first),
        _sampled(("first", "second", "is_paraphrase")),
    ),
    StsPairs: ("pairs", len, _sampled(("first", "second", "gold"))),
}


@dataclass(frozen=True)
class Subsampled:
    data: Any
    items: int
    note: str | None  # "subsample of N of M <unit>" when capped


def subsample(data: Any, max_items: int | None) -> Subsampled:
    unit, count, reduce = SUBSAMPLERS[type(data)]
    total = count(data)
    if max_items is None or total <= max_items:
        return Subsampled(data, total, None)
    how = "first" if type(data) is CaptionGroups else f"seeded sample (seed {SAMPLE_SEED}),"
    note = f"subsample of {max_items} of {total} {unit} ({how} max items {max_items})"
    return Subsampled(reduce(data, max_items), max_items, note)
