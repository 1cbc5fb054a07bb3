"""The rewriter's word lists and candidate limits: what WordNet may offer, and what never.

Data only: the lists of words and WordNet senses the rewriter keeps, blocks or treats
specially, and the limits on how many senses and substitutes it considers per word.
"""

from __future__ import annotations

import re

SPACY_TO_WORDNET_POS = {"NOUN": "n", "VERB": "v", "ADJ": "a", "ADV": "r"}
# Words whose swap rarely keeps the meaning (light verbs, vague nouns).
KEEP_LEMMAS = frozenset(
    [
        "be",
        "have",
        "do",
        "get",
        "make",
        "take",
        "go",
        "come",
        "give",
        "put",
        "set",
        "let",
        "say",
        "see",
        "show",
        "use",
        "look",
        "thing",
        "way",
        "lot",
        "kind",
        "type",
        "part",
        "side",
        "one",
        "time",
        "day",
        "year",
    ]
)
SOURCE_SENSES = 2  # senses of the original word that may supply a substitute
CANDIDATE_SENSES = 3  # ... and that sense must be among the substitute's own first three
MIN_WORD_COUNT = 5  # SemCor sense counts that make a word common without the vocabulary check
MAX_CANDIDATES = 4  # substitutes per word sent to the encoder (it is the expensive part)
SHARED_PREFIX = 4  # "photo" -> "photograph" is the same word, not a substitute
SPELLING_VARIANT_RATIO = 0.75  # grey/gray, harbour/harbor: difflib ratio at or above this
OFF_REGISTER_DOMAINS = frozenset(
    [
        "slang.n.02",
        "colloquialism.n.01",
        "disparagement.n.01",
        "ethnic_slur.n.01",
        "obscenity.n.02",
        "street_name.n.02",
        "archaism.n.01",
        "trade_name.n.01",
    ]
)
OFF_REGISTER_GLOSS = re.compile(
    r"\b(?:offensive|slang|informal|derogatory|disparaging|vulgar|obscene)\b"
)
# Racial labels WordNet lists as plain similar-tos of colour adjectives ("black", "red").
BLOCKED_WORDS = frozenset(["negro", "colored", "coloured"])
PHOTO_OF = re.compile(
    r"^(?:(?:a|an|the)\s+)?(?:photo|photograph|image|picture|snapshot)s?\s+of\s+", re.IGNORECASE
)
GROUPINGS = frozenset(["container.n.01", "group.n.01"])  # "X of Y" -> "Y X" for these X
PEOPLE = frozenset(["person.n.01"])  # "who has" rather than "that has"
NOUN_PHRASE_HEADS = frozenset(["nsubj", "nsubjpass", "dobj", "pobj", "ROOT"])
LIVING = frozenset(["person.n.01", "animal.n.01"])
PERSON_GLOSS = re.compile(r"\b(?:persons?|people)\b")
WORDNET_TO_UPOS = {"n": "NOUN", "v": "VERB", "a": "ADJ", "r": "ADV"}
PROPER_TO_COMMON_TAG = {"NNP": "NN", "NNPS": "NNS"}  # spaCy tags some common nouns NNP
