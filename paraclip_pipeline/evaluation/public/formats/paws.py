"""PAWS-Wiki (Zhang et al., 2019) ``paws/<split>.tsv``: id, sentence1, sentence2, label.

The upstream ``final`` files start with an ``id sentence1 sentence2 label`` header; the
mirrored copy has none; both are read. Quotes are text: sentences such as
``" Ceres " ...`` hold literal quote marks.
"""

from __future__ import annotations

from pathlib import Path

from paraclip_pipeline.evaluation.public.formats.labelled_pairs import (
    LabelledPairs,
    read_labelled_tsv,
)

HEADER = ["id", "sentence1", "sentence2", "label"]


def load_paws(path: Path) -> LabelledPairs:
    return read_labelled_tsv(path, HEADER, first=1, second=2, label=3)
