"""Caption cleaning: every caption made safe to paraphrase, and flagged when it is unusable.

Rows are never dropped. Text is NFC-normalised; line breaks, tabs and other whitespace
controls become spaces, remaining control characters and byte-order marks are deleted,
and the ends are stripped. ``input_issue`` says why a kept caption is unusable: ``empty``
(nothing left), ``invalid_utf8`` (undecodable bytes, decoded with U+FFFD replacement),
``too_long`` (more characters than ``max_caption_chars``; nothing is truncated) or
``instruction`` (the caption reads as an instruction to a language model, see
``INSTRUCTION_PHRASES``); the first that applies, in that order.

Instruction-like captions are flagged, not paraphrased: an LLM that obeys one replies
with something that is no paraphrase, and one that paraphrases it keeps the instruction
in T' and T'' (issue 13 found such pairs in training), so neither step is worth a call.

(Not to be confused with the paraphrase step's *answer hygiene*, which cleans LLM
answers: this cleans the source captions.)
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

from paraclip_pipeline.sources.readers.parsed import strings_from_python

DEFAULT_MAX_CAPTION_CHARS = 2000
ISSUE_EMPTY = "empty"
ISSUE_INVALID_UTF8 = "invalid_utf8"
ISSUE_TOO_LONG = "too_long"
ISSUE_INSTRUCTION = "instruction"
INPUT_ISSUES = (ISSUE_EMPTY, ISSUE_INVALID_UTF8, ISSUE_TOO_LONG, ISSUE_INSTRUCTION)

# Phrases that address a language model rather than describe an image; matched as whole
# words, case-insensitively, any whitespace between the words ("previous instructions"
# also covers "ignore (all) previous instructions"). Kept small on purpose: each is rare
# in real alt-text, and a false positive only costs one caption. docs/filtering.md lists them.
INSTRUCTION_PHRASES = (
    "ignore the above",
    "previous instructions",
    "reply with",
    "respond with",
    "system prompt",
    "you are an AI",
)
# One RE2 pattern for all phrases, built once at import.
_INSTRUCTION_PATTERN = (
    r"(?i)\b("
    + "|".join(r"\s+".join(re.escape(word) for word in p.split()) for p in INSTRUCTION_PHRASES)
    + r")\b"
)

# RE2 patterns. Whitespace controls become a space so "red\nbus" does not turn into
# "redbus"; every other C0/C1 control and the byte-order mark is deleted.
_WHITESPACE_CONTROLS = r"[\t\n\x{0b}\x{0c}\r\x{1c}-\x{1f}\x{85}\x{2028}\x{2029}]"
_OTHER_CONTROLS = r"[\x{00}-\x{08}\x{0e}-\x{1b}\x{7f}-\x{84}\x{86}-\x{9f}\x{feff}]"


def clean_captions(
    texts: pa.Array, undecodable: pa.Array, max_caption_chars: int = DEFAULT_MAX_CAPTION_CHARS
) -> tuple[pa.Array, pa.Array]:
    """Cleaned captions (nulls become "") and their ``input_issue`` (see module docstring)."""
    spaced = pc.replace_substring_regex(
        pc.fill_null(texts, ""), pattern=_WHITESPACE_CONTROLS, replacement=" "
    )
    without_controls = pc.replace_substring_regex(spaced, pattern=_OTHER_CONTROLS, replacement="")
    # NFC after deleting controls, so a control between a letter and its accent cannot block
    # the composition.
    cleaned = pc.utf8_trim_whitespace(pc.utf8_normalize(without_controls, form="NFC"))
    lengths = pc.utf8_length(cleaned)
    issues = pc.case_when(
        pc.make_struct(
            pc.equal(lengths, 0),
            undecodable,
            pc.greater(lengths, max_caption_chars),
            pc.match_substring_regex(cleaned, _INSTRUCTION_PATTERN),
        ),
        pa.scalar(ISSUE_EMPTY),
        pa.scalar(ISSUE_INVALID_UTF8),
        pa.scalar(ISSUE_TOO_LONG),
        pa.scalar(ISSUE_INSTRUCTION),
    )
    return cleaned, issues


def clean_caption(
    raw: str | None, max_caption_chars: int = DEFAULT_MAX_CAPTION_CHARS
) -> tuple[str, str | None]:
    """``clean_captions`` for one Python string (lone surrogates count as undecodable bytes)."""
    texts, undecodable = strings_from_python([raw])
    cleaned, issues = clean_captions(texts, undecodable, max_caption_chars)
    return cleaned[0].as_py(), issues[0].as_py()


def clean_metadata(values: pa.Array) -> pa.Array:
    """Ids, URLs, paths: surrounding whitespace stripped, blank -> null."""
    trimmed = pc.utf8_trim_whitespace(values)
    return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)
