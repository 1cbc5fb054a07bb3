"""MRPC (Dolan & Brockett, 2005) ``mrpc/msr_paraphrase_<split>.txt``.

Tab-separated: Quality (1 = paraphrase), #1 ID, #2 ID, #1 String, #2 String. The
first line starts with a UTF-8 byte-order mark; upstream it is a header of those
names, the mirrored copy starts with data right after the mark; both are read.
Quotes are text: the sentences hold unbalanced quote marks that a quoting reader
would merge across lines.
"""

from __future__ import annotations

from pathlib import Path

from paraclip_pipeline.evaluation.public.formats.labelled_pairs import (
    LabelledPairs,
    read_labelled_tsv,
)

HEADER = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]


def load_mrpc(path: Path) -> LabelledPairs:
    return read_labelled_tsv(path, HEADER, first=3, second=4, label=0)
