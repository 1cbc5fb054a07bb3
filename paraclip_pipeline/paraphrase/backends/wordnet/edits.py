"""An edit of a parsed caption, and rendering a caption with its edits applied."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spacy.tokens import Doc


@dataclass(frozen=True)
class Edit:
    """Replace tokens ``start``..``end`` (exclusive) by ``text``; ``""`` deletes them."""

    start: int
    end: int
    text: str
    score: float  # meaning kept, on the scale of the rule that proposed the edit
    structural: bool = False

    def overlaps(self, other: Edit) -> bool:
        return self.start < other.end and other.start < self.end


def render(doc: Doc, edits: Sequence[Edit], start: int = 0, end: int | None = None) -> str:
    """Tokens ``start``..``end`` of ``doc`` with ``edits`` applied, original spacing kept."""
    by_start = {edit.start: edit for edit in edits}
    pieces: list[str] = []
    index, stop = start, len(doc) if end is None else end
    while index < stop:
        edit = by_start.get(index)
        if edit is None:
            pieces.append(doc[index].text_with_ws)
            index += 1
            continue
        last = doc[min(edit.end, stop) - 1]
        if edit.text:
            pieces.append(edit.text + last.whitespace_)
        index = edit.end
    return "".join(pieces).strip()
