"""SugarCrepe++ (Dumpala et al., NeurIPS 2024 D&B) subset files, ``sugarcrepe_pp/<subset>.json``.

A JSON list of ``{id, filename, caption, caption2, negative_caption}`` per COCO val2017
image: ``caption2`` paraphrases ``caption``, ``negative_caption`` changes its meaning
with mostly the same words. A few upstream items have ``caption2 == caption``; they are
kept (dropping them would change the benchmark's denominator) and counted in
``identical_paraphrases``: for them sim(caption, caption2) is 1, so they count as a hit
unless the negative embeds exactly like the caption.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from paraclip_pipeline.evaluation.errors import BenchmarkDataError
from paraclip_pipeline.evaluation.reading import read_json_file

TEXT_FIELDS = ("caption", "caption2", "negative_caption")


@dataclass(frozen=True)
class SugarCrepeItems:
    source: Path
    caption: list[str]
    caption2: list[str]
    negative: list[str]

    @property
    def identical_paraphrases(self) -> int:
        return sum(a == b for a, b in zip(self.caption, self.caption2, strict=True))

    def __len__(self) -> int:
        return len(self.caption)


def load_sugarcrepe_pp(path: Path) -> SugarCrepeItems:
    items = read_json_file(Path(path))
    if not isinstance(items, list) or not items:
        raise BenchmarkDataError(path, "expected a non-empty JSON list of items")
    columns: dict[str, list[str]] = {name: [] for name in TEXT_FIELDS}
    for row, item in enumerate(items):
        if not isinstance(item, dict):
            raise BenchmarkDataError(path, f"item is JSON {type(item).__name__}", row=row)
        for name in TEXT_FIELDS:
            value = item.get(name)
            if not isinstance(value, str) or not value.strip():
                raise BenchmarkDataError(
                    path, f"missing, empty or non-string value {value!r}", row=row, column=name
                )
            columns[name].append(value)
    return SugarCrepeItems(
        Path(path), columns["caption"], columns["caption2"], columns["negative_caption"]
    )
