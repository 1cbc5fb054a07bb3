"""Sentence pairs with a binary paraphrase label (PAWS, MRPC): the shared table reader.

Both formats are tab-separated with quotes as plain text (``csv.QUOTE_NONE``); each may
start with a header line (upstream) or without one (the offline mirror), and the first
line may carry a UTF-8 byte-order mark.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paraclip_pipeline.evaluation.errors import BenchmarkDataError
from paraclip_pipeline.evaluation.sts import tsv_rows

LABELS = {"0": False, "1": True}
BYTE_ORDER_MARK = "\ufeff"


@dataclass(frozen=True)
class LabelledPairs:
    source: Path
    first: list[str]
    second: list[str]
    is_paraphrase: np.ndarray  # bool, one per pair

    def __len__(self) -> int:
        return len(self.first)


def parse_label(text: str, path: Path, line: int, column: str) -> bool:
    try:
        return LABELS[text.strip()]
    except KeyError:
        raise BenchmarkDataError(
            path, f"label {text!r} is not 0 or 1", line=line, column=column
        ) from None


def labelled_pairs(path: Path, rows: list[tuple[str, str, bool]]) -> LabelledPairs:
    if not rows:
        raise BenchmarkDataError(path, "no sentence pairs")
    first, second, labels = zip(*rows, strict=True)
    label_array = np.asarray(labels, dtype=bool)
    if label_array.all() or not label_array.any():
        raise BenchmarkDataError(path, "every pair has the same label; AP needs both labels")
    return LabelledPairs(Path(path), list(first), list(second), label_array)


def read_labelled_tsv(
    path: Path, header: list[str], first: int, second: int, label: int
) -> LabelledPairs:
    """Rows of ``len(header)`` fields; sentences and the 0/1 label at the given columns."""
    rows = []
    for line, fields in tsv_rows(Path(path)):
        if line == 1:
            fields = [fields[0].removeprefix(BYTE_ORDER_MARK), *fields[1:]]
            if [field.strip() for field in fields] == header:
                continue
        if len(fields) != len(header):
            raise BenchmarkDataError(
                path,
                f"expected {len(header)} tab-separated fields ({', '.join(header)}), "
                f"got {len(fields)}",
                line=line,
            )
        value = parse_label(fields[label], path, line, header[label])
        rows.append((fields[first], fields[second], value))
    return labelled_pairs(path, rows)
