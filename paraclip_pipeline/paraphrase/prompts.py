"""Prompt templates (the paper's two by default) and how a caption is put inside one.

The caption is data, never instructions: it is quoted inside the template, its own
double quotes become single quotes so it cannot close the quote early, and line breaks
collapse to spaces so it cannot start a new line of instructions. Templates are filled
with ``str.replace`` rather than ``str.format``, so braces in a caption or a custom
template are plain text.
"""

from __future__ import annotations

import re
from typing import Literal

Stage = Literal[1, 2]

PAPER_STAGE1_TEMPLATE = (
    'Paraphrase the given caption "{caption}" concisely while preserving the meaning.'
)
PAPER_STAGE2_TEMPLATE = (
    'Paraphrase the given text "{text}" concisely while preserving the meaning '
    "and avoiding use of existing words."
)
STAGE_PLACEHOLDERS: dict[Stage, str] = {1: "{caption}", 2: "{text}"}

# Worked examples for base (non-chat) models such as Gemma-3-270M, which only continue text.
FEW_SHOT_EXAMPLES: dict[Stage, tuple[tuple[str, str], ...]] = {
    1: (
        (
            "IMG_2041.jpg golden retriever puppy playing in snow | free shipping",
            "A golden retriever puppy playing in the snow.",
        ),
        (
            "Vintage red bicycle leaning against brick wall stock photo",
            "An old red bike against a brick wall.",
        ),
        ("#sunset over the ocean #beachlife", "The sun setting over the sea at the beach."),
    ),
    2: (
        (
            "A golden retriever puppy playing in the snow.",
            "A young yellow dog frolicking on white powder.",
        ),
        ("An old red bike against a brick wall.", "A vintage crimson cycle propped by masonry."),
        (
            "The sun setting over the sea at the beach.",
            "Dusk descending across the shore's waters.",
        ),
    ),
}
ANSWER_LEAD = "Answer:"

_WHITESPACE = re.compile(r"\s+")


def quote_safe(text: str) -> str:
    """The caption as it may appear between the template's double quotes."""
    return _WHITESPACE.sub(" ", text.replace('"', "'")).strip()


def render_prompt(template: str, stage: Stage, text: str) -> str:
    return template.replace(STAGE_PLACEHOLDERS[stage], quote_safe(text))


def render_few_shot_prompt(template: str, stage: Stage, text: str) -> str:
    """A completion prompt for base models: worked examples, then the open question."""
    blocks = [
        f"{render_prompt(template, stage, source)}\n{ANSWER_LEAD} {answer}"
        for source, answer in FEW_SHOT_EXAMPLES[stage]
    ]
    blocks.append(f"{render_prompt(template, stage, text)}\n{ANSWER_LEAD}")
    return "\n\n".join(blocks)
