"""Which files of a data directory are which benchmark, and what each one measures.

A data directory is recognised by its layout (``PARACLIP_EVAL_DATA``, laid out like the
shared ``data/eval``): any split of a format is scored the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from paraclip_pipeline.evaluation.public import metrics
from paraclip_pipeline.evaluation.public.bootstrap import Statistic
from paraclip_pipeline.evaluation.public.formats.caption_groups import (
    CAPTIONS_FILENAME,
    CaptionGroups,
    load_caption_groups,
)
from paraclip_pipeline.evaluation.public.formats.labelled_pairs import LabelledPairs
from paraclip_pipeline.evaluation.public.formats.mrpc import load_mrpc
from paraclip_pipeline.evaluation.public.formats.paws import load_paws
from paraclip_pipeline.evaluation.public.formats.sugarcrepe_pp import (
    SugarCrepeItems,
    load_sugarcrepe_pp,
)
from paraclip_pipeline.evaluation.public.selection import Selection, select_files, subsample
from paraclip_pipeline.evaluation.sts import StsPairs, load_stsb_csv

CAPTION_GROUPS = "caption_groups"
SUGARCREPE_PP = "sugarcrepe_pp"
PAWS = "paws"
MRPC = "mrpc"
STSB = "stsb"
RANK_K = 10
# MRPC's sentence file (msr_paraphrase_data.txt) shares the prefix but holds no pairs.
MRPC_NOT_PAIRS = "msr_paraphrase_data.txt"

# texts -> their embeddings, rows in the order given
Embed = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class Measurement:
    """One metric's per-item inputs for one encoder; ``statistic`` turns them into a score."""

    metric: str
    statistic: Statistic
    arrays: tuple[np.ndarray, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class BenchmarkFile:
    benchmark: str
    path: Path
    relative: str
    data: Any = field(compare=False)
    items: int = 0  # images, items or pairs scored
    subsample_note: str | None = None  # "subsample of N of M ..." when capped

    @property
    def texts(self) -> list[str]:
        return TEXTS[self.benchmark](self.data)

    def measure(self, embed: Embed) -> list[Measurement]:
        return MEASURES[self.benchmark](self.data, embed)


def _caption_group_measures(groups: CaptionGroups, embed: Embed) -> list[Measurement]:
    embeddings = embed(groups.captions)
    hits, precision = metrics.caption_group_retrieval(embeddings, groups.group_size)
    ao, js, used = metrics.caption_group_rank_similarity(embeddings, groups.group_size, RANK_K)
    notes = () if used == RANK_K else (f"{groups.image_count} images: k={RANK_K} scored as {used}",)
    return [
        Measurement("R@1", metrics.row_means, (hits,)),
        Measurement("mAP", metrics.row_means, (precision,)),
        Measurement(f"AO@{RANK_K}", metrics.row_means, (ao,), notes),
        Measurement(f"JS@{RANK_K}", metrics.row_means, (js,), notes),
    ]


def _sugarcrepe_measures(items: SugarCrepeItems, embed: Embed) -> list[Measurement]:
    hits = metrics.sugarcrepe_hits(
        embed(items.caption), embed(items.caption2), embed(items.negative)
    )
    same = items.identical_paraphrases
    notes = (f"{same} item(s) with caption2 == caption kept",) if same else ()
    return [Measurement("accuracy", metrics.row_means, (hits,), notes)]


def _cosines(first: list[str], second: list[str], embed: Embed) -> np.ndarray:
    return np.einsum("ij,ij->i", embed(first), embed(second)).astype(np.float64)


def _pair_measures(pairs: LabelledPairs, embed: Embed) -> list[Measurement]:
    scores = _cosines(pairs.first, pairs.second, embed)
    return [Measurement("AP", metrics.average_precision, (scores, pairs.is_paraphrase))]


def _sts_measures(pairs: StsPairs, embed: Embed) -> list[Measurement]:
    scores = _cosines(pairs.first, pairs.second, embed)
    return [Measurement("spearman", metrics.spearman, (scores, pairs.gold))]


def _pair_texts(pairs: LabelledPairs | StsPairs) -> list[str]:
    return [*pairs.first, *pairs.second]


TEXTS: dict[str, Callable[[Any], list[str]]] = {
    CAPTION_GROUPS: lambda groups: groups.captions,
    SUGARCREPE_PP: lambda items: [*items.caption, *items.caption2, *items.negative],
    PAWS: _pair_texts,
    MRPC: _pair_texts,
    STSB: _pair_texts,
}
MEASURES: dict[str, Callable[[Any, Embed], list[Measurement]]] = {
    CAPTION_GROUPS: _caption_group_measures,
    SUGARCREPE_PP: _sugarcrepe_measures,
    PAWS: _pair_measures,
    MRPC: _pair_measures,
    STSB: _sts_measures,
}
# benchmark -> (glob under the data directory, loader)
LAYOUT: dict[str, tuple[str, Callable[[Path], Any]]] = {
    CAPTION_GROUPS: (f"*/{CAPTIONS_FILENAME}", load_caption_groups),
    SUGARCREPE_PP: ("sugarcrepe_pp/*.json", load_sugarcrepe_pp),
    PAWS: ("paws/*.tsv", load_paws),
    MRPC: ("mrpc/msr_paraphrase_*.txt", load_mrpc),
    STSB: ("stsb/sts-*.csv", load_stsb_csv),
}


def find_benchmark_files(data_dir: Path) -> list[tuple[str, Path]]:
    """(benchmark, path) of every file the layout recognises, sorted within a benchmark."""
    found = []
    for benchmark, (pattern, _) in LAYOUT.items():
        for path in sorted(Path(data_dir).glob(pattern)):
            if path.is_file() and path.name != MRPC_NOT_PAIRS:
                found.append((benchmark, path))
    return found


def load_benchmark_files(data_dir: Path, selection: Selection | None = None) -> list[BenchmarkFile]:
    """Every recognised file that ``selection`` names, loaded and capped to its max items
    (malformed input raises ``BenchmarkDataError``)."""
    data_dir = Path(data_dir)
    selection = selection or Selection()
    loaded = []
    for benchmark, path in select_files(
        find_benchmark_files(data_dir), data_dir, selection.patterns
    ):
        chosen = subsample(LAYOUT[benchmark][1](path), selection.max_items)
        relative = path.relative_to(data_dir).as_posix()
        loaded.append(
            BenchmarkFile(benchmark, path, relative, chosen.data, chosen.items, chosen.note)
        )
    return loaded
