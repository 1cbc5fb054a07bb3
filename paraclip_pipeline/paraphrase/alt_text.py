"""Alt-text noise removal: the plain-language part of a web caption.

Web alt-text carries file names, URLs, shop boilerplate, product codes, hashtags and
HTML entities; stage 1 should read like a sentence, so these go (or become words)
before any rewriting.
"""

from __future__ import annotations

import html
import re

_URL = re.compile(r"\b(?:https?://|www\.)\S+", re.IGNORECASE)
# A file name, with the " (3)" that downloads add to repeated names.
_FILE_NAME = re.compile(
    r"\b([\w-]+)(?:\s*\(\d+\))?\.(?:jpe?g|png|gif|webp|tiff?|bmp|heic)\b", re.IGNORECASE
)
# File stems that say nothing about the picture ("image (3).png", "untitled.jpg").
_GENERIC_STEM = re.compile(r"^(?:img|image|photo|picture|pic|screenshot|untitled|file)$", re.I)
_CAMERA_NAME = re.compile(
    r"^(?:img|dsc|dscn|dscf|pxl|p|mvimg|photo|image|screenshot)[_-]?\d+$", re.I
)
_HASHTAG = re.compile(r"#(\w+)")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z])(?=[A-Z])")
_BOILERPLATE = re.compile(
    r"\b(?:free shipping|buy (?:it )?now|shop now|for sale|on sale|in stock|best price|"
    r"add to cart|click here|royalty[- ]free|stock (?:photo|image|picture|illustration)s?|"
    r"high[- ]res(?:olution)?|(?:hd|4k) wallpapers?|wallpapers? hd|download(?: free)?|"
    r"(?:\d+\s*)?pcs?\b|(?:(?:on|at|from|via)\s+)?(?:etsy|ebay|amazon(?:\.com)?|alamy|shutterstock|"
    r"istock|getty images|dreamstime|123rf|pinterest))\b",
    re.IGNORECASE,
)
# Codes such as "SKU 84231", "ABX-2231B", "#12345": digits mixed into a token or after a label.
_PRODUCT_CODE = re.compile(
    r"\b(?:sku|item|model|ref|art|no|nr)\.?\s*[:#]?\s*[\w-]*\d[\w-]*|\b(?=[\w-]*\d)(?=[\w-]*[A-Za-z])"
    r"[\w-]{5,}\b",
    re.IGNORECASE,
)
_SEPARATORS = re.compile(r"\s*[|•·»«~]+\s*|\s+-{1,2}\s+|_+")
_SPACES = re.compile(r"\s+")
_EDGE_PUNCTUATION = re.compile(r"^[\s,;:.\-–—]+|[\s,;:\-–—]+$")


def _file_name_words(match: re.Match[str]) -> str:
    stem = match.group(1)
    if _CAMERA_NAME.match(stem) or _GENERIC_STEM.match(stem):
        return ""
    return stem.replace("-", " ").replace("_", " ")


def _hashtag_words(match: re.Match[str]) -> str:
    return _CAMEL_BOUNDARY.sub(" ", match.group(1)).replace("_", " ").lower()


def normalise_alt_text(text: str) -> str:
    """The caption with web noise removed; a clean caption comes back unchanged."""
    text = html.unescape(text)
    text = _URL.sub(" ", text)
    text = _FILE_NAME.sub(_file_name_words, text)
    text = " ".join("" if _CAMERA_NAME.match(word) else word for word in text.split())
    text = _HASHTAG.sub(_hashtag_words, text)
    text = _BOILERPLATE.sub(" ", text)
    text = _PRODUCT_CODE.sub(" ", text)
    text = _SEPARATORS.sub(" ", text)
    return _EDGE_PUNCTUATION.sub("", _SPACES.sub(" ", text))
