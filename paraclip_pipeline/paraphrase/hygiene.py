"""Answer hygiene: strip LLM chatter and quotes, then give every answer a status.

Statuses (``schema.PARAPHRASE_STATUSES``): ``ok``; ``refused`` (the model declined);
``empty`` (nothing usable left); ``echo`` (normalised equal to the input);
``error`` and ``skipped`` (no usable input, or a backend with no answer for it by
construction, as ``co_captions`` for a caption without a group) are set by the engine,
never here. Model output is only
ever treated as data: nothing downstream executes or follows it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Bump when the rules below change: cached answers cleaned by older rules are re-cleaned.
HYGIENE_VERSION = "hygiene-1"

OK = "ok"
REFUSED = "refused"
EMPTY = "empty"
ECHO = "echo"
ERROR = "error"
SKIPPED = "skipped"

# Lead-in chatter, e.g. "Sure! Here is a concise paraphrase of the caption:".
_LEAD_IN = re.compile(
    r"""^\s*(?:
        (?:sure|certainly|of\ course|okay|ok|absolutely|great)\b[!.,:]*\s*
      | here(?:'s|\ is|\ are)\b[^:\n]{0,80}:\s*
      | (?:a\ |the\ )?(?:concise\ |possible\ |rewritten\ |new\ )?
        (?:paraphrase[ds]?|paraphrasing|rephrased|rewritten|rewrite|answer|output|text|caption)
        (?:\ (?:version|text|caption))?\s*:\s*
    )""",
    re.IGNORECASE | re.VERBOSE,
)
# Trailing chatter: offers of more help, notes about the rewrite.
_TRAILING = re.compile(
    r"\s*(?:let me know|i hope this|hope this helps|feel free|note:|this paraphrase|"
    r"this version|\(note\b).*$",
    re.IGNORECASE | re.DOTALL,
)
_REFUSAL = re.compile(
    r"^\W*(?:i'm sorry|i am sorry|sorry,|i apologi[sz]e|i can(?:no|')t|i cannot|i won't|"
    r"i will not|i'm unable|i am unable|i'm not able|i am not able|as an ai\b|"
    r"unfortunately,? i)",
    re.IGNORECASE,
)
_QUOTES = "\"'“”‘’«»`"
_LIST_MARKER = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
_MARKDOWN = re.compile(r"[*_]{2,}|^#+\s*")
_NON_WORD = re.compile(r"[\W_]+")


@dataclass(frozen=True)
class CleanedAnswer:
    text: str | None  # None unless status is ok
    status: str


def normalise_for_compare(text: str) -> str:
    """Case, accents, punctuation and spacing removed: what "the same words" means for echo."""
    folded = unicodedata.normalize("NFKD", text).casefold()
    return " ".join(_NON_WORD.sub(" ", folded).split())


def _strip_quotes(text: str) -> str:
    text = text.strip()
    while len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    # A quoted answer followed only by its full stop: "A dog running.".
    if len(text) >= 2 and text[0] in _QUOTES and text.rstrip(".").endswith(text[0]):
        text = text.rstrip(".")[1:-1].strip()
    return text


def _first_answer_line(raw: str) -> str:
    """The paraphrase itself: chatter-only lines are dropped, the first real line kept."""
    for line in raw.splitlines():
        line = _MARKDOWN.sub("", _LIST_MARKER.sub("", line)).strip()
        while True:
            stripped = _LEAD_IN.sub("", line, count=1)
            if stripped == line:
                break
            line = stripped
        line = _strip_quotes(_TRAILING.sub("", line))
        if normalise_for_compare(line):
            return line
    return ""


def clean_answer(raw: str, source_text: str) -> CleanedAnswer:
    """The paraphrase inside a raw model answer, with its status."""
    if _REFUSAL.match(raw.strip().lstrip(_QUOTES)):
        return CleanedAnswer(None, REFUSED)
    text = _first_answer_line(raw)
    if _REFUSAL.match(text):
        return CleanedAnswer(None, REFUSED)
    normalised = normalise_for_compare(text)
    if not normalised:
        return CleanedAnswer(None, EMPTY)
    if normalised == normalise_for_compare(source_text):
        return CleanedAnswer(None, ECHO)
    return CleanedAnswer(text, OK)
