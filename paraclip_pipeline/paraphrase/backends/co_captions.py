"""``co_captions``: human co-captions of the same image as the two paraphrasing steps.

Not an LLM and not the paper's T'/T'' generator. Caption datasets such as COCO and
Flickr30k carry several independent human captions per image (COCO: 5); they are real
paraphrases, with new words and new structure, which the offline rewriters are not
(Gemma-3-270M echoed 9 of 12 COCO captions at step 1; the WordNet rewriter changes 1-3
words). This backend answers from them, so the pipeline trains on human paraphrases
without any model.

Groups are the captions of one shard that share an image reference (``image_ref``: the
file name as the shard gives it, kept when the image file itself is absent), in source-row
order, after dropping input issues and captions whose normalised text (case, accents,
punctuation and spacing folded) repeats an earlier one of the group: a duplicate is never
a target. Step 1 answers the caption at position i with position i+1 (mod n); step 2
answers T' (position j) with position j+1, so T'' is position i+2: a third caption, never
T, when n >= 3. Smaller groups, and captions with no image reference, get no answer
(``answers`` returns False and the engine marks the row ``skipped``).

The answer is a function of the input text alone (the engine's cache key), so a text that
occurs in several groups answers from the first of them; T'' still differs from T, because
T' maps to the first group holding it, which cannot be an earlier group holding T.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from paraclip_pipeline import schema
from paraclip_pipeline.paraphrase.backends.base import (
    Completion,
    IdentityValue,
    ParaphraseBackend,
    ParaphraseRequest,
)
from paraclip_pipeline.paraphrase.config import ParaphraserConfig
from paraclip_pipeline.paraphrase.hygiene import normalise_for_compare
from paraclip_pipeline.paraphrase.prompts import Stage

# Fewer captions than this leave step 2 nowhere to go but back to the caption.
MIN_GROUP_SIZE = 3
# What the backend reads of raw_captions.
GROUP_COLUMNS = (schema.SOURCE_ROW, schema.TEXT, schema.IMAGE_REF, schema.INPUT_ISSUE)


def caption_groups(captions: pa.Table) -> list[tuple[str, ...]]:
    """The shard's caption groups (see the module docstring), in order of first caption."""
    missing = [name for name in GROUP_COLUMNS if name not in captions.column_names]
    if missing:
        raise ValueError(
            f"co_captions needs raw_captions columns {missing} (rematerialize raw_captions: "
            f"older files lack {schema.IMAGE_REF!r}); it has {captions.column_names}"
        )
    rows = captions.select(list(GROUP_COLUMNS)).sort_by(schema.SOURCE_ROW).to_pylist()
    groups: dict[str, list[str]] = {}
    seen: dict[str, set[str]] = {}
    for row in rows:
        image, text = row[schema.IMAGE_REF], row[schema.TEXT]
        if image is None or row[schema.INPUT_ISSUE] is not None:
            continue
        normalised = normalise_for_compare(text)
        if normalised in seen.setdefault(image, set()):
            continue
        seen[image].add(normalised)
        groups.setdefault(image, []).append(text)
    return [tuple(group) for group in groups.values() if len(group) >= MIN_GROUP_SIZE]


def read_caption_groups(raw_captions_file: Path) -> list[tuple[str, ...]]:
    """``caption_groups`` of a stored raw_captions partition, reading only the columns needed."""
    if not raw_captions_file.is_file():
        raise FileNotFoundError(
            f"co_captions needs the shard's raw_captions at {raw_captions_file}; "
            "materialize raw_captions for this shard first"
        )
    return caption_groups(pq.read_table(raw_captions_file, columns=list(GROUP_COLUMNS)))


class CoCaptionsBackend(ParaphraseBackend):
    """Answers each text with the next human caption of its image; see the module docstring."""

    name = "co_captions"
    default_model = "human-co-captions"

    def __init__(self, config: ParaphraserConfig, groups: Sequence[tuple[str, ...]]) -> None:
        super().__init__(config)
        self._next: dict[str, str] = {}
        for group in groups:
            for position, text in enumerate(group):
                self._next.setdefault(
                    normalise_for_compare(text), group[(position + 1) % len(group)]
                )
        encoded = json.dumps([list(group) for group in groups], ensure_ascii=False)
        self._grouping_hash = hashlib.sha256(encoded.encode("utf-8")).hexdigest()

    def cache_identity(self, stage: Stage) -> dict[str, IdentityValue]:
        """No prompt or sampling decides the answer; the shard's grouping does."""
        return {
            "backend": self.name,
            "model": self.model_name,
            "stage": stage,
            "grouping": self._grouping_hash,
        }

    def answers(self, request: ParaphraseRequest) -> bool:
        return normalise_for_compare(request.text) in self._next

    def _generate(self, requests: Sequence[ParaphraseRequest]) -> list[Completion]:
        completions = []
        for request in requests:
            answer = self._next.get(normalise_for_compare(request.text))
            if answer is None:
                completions.append(Completion(error=f"no caption group holds {request.text!r}"))
            else:
                completions.append(Completion(text=answer))
        return completions
