"""``*/captions.txt``: N consecutive human captions per image, one caption a line.

The Karpathy-split caption files of SCAN's precomputed data (COCO, Flickr30k) hold no
image ids: lines 1-5 describe image 1, lines 6-10 image 2, and so on. Flickr's file may
lack the final newline, which ``str.splitlines`` ignores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from paraclip_pipeline.evaluation.errors import BenchmarkDataError

CAPTIONS_FILENAME = "captions.txt"
DEFAULT_GROUP_SIZE = 5


@dataclass(frozen=True)
class CaptionGroups:
    """``captions[i * group_size + j]`` is caption j of image i."""

    source: Path
    captions: list[str]
    group_size: int

    @property
    def image_count(self) -> int:
        return len(self.captions) // self.group_size


def load_caption_groups(path: Path, group_size: int = DEFAULT_GROUP_SIZE) -> CaptionGroups:
    """Every line a caption; a count that is not a multiple of ``group_size`` is an error."""
    if group_size < 3:
        raise ValueError(f"caption groups need at least 3 captions per image, got {group_size}")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise BenchmarkDataError(path, f"not UTF-8 text ({error})") from None
    captions = text.splitlines()
    for line, caption in enumerate(captions, start=1):
        if not caption.strip():
            raise BenchmarkDataError(path, "empty caption line", line=line)
    if not captions:
        raise BenchmarkDataError(path, "no captions")
    if len(captions) % group_size:
        last_group = len(captions) - len(captions) % group_size + 1
        raise BenchmarkDataError(
            path,
            f"{len(captions)} caption lines is not a multiple of {group_size} captions per "
            f"image; the last group starts at line {last_group}",
        )
    return CaptionGroups(Path(path), captions, group_size)
