"""Single-word substitutes WordNet proposes for a word, junk guards applied.

Synonyms of the word's common senses, similar adjectives and common hypernyms of nouns;
only single lower-case common words (no "Equus caballus", no proper nouns), no slang or
slurs, no spelling variants or inflections of the original. The sentence encoder later
decides which of them keep the caption's meaning.
"""

from __future__ import annotations

import difflib
import functools
from typing import TYPE_CHECKING, NamedTuple

from spacy.lang.en.stop_words import STOP_WORDS

from paraclip_pipeline.paraphrase.backends.wordnet.lexicon import (
    BLOCKED_WORDS,
    CANDIDATE_SENSES,
    KEEP_LEMMAS,
    MAX_CANDIDATES,
    MIN_WORD_COUNT,
    OFF_REGISTER_DOMAINS,
    OFF_REGISTER_GLOSS,
    PERSON_GLOSS,
    SHARED_PREFIX,
    SOURCE_SENSES,
    SPELLING_VARIANT_RATIO,
    WORDNET_TO_UPOS,
)

if TYPE_CHECKING:
    from nltk.corpus.reader.wordnet import Synset, WordNetCorpusReader
    from spacy.tokens import Token


class Substitute(NamedTuple):
    word: str
    generalises: bool  # a hypernym ("child" for "toddler"), held to a stricter gate


def _same_word(candidate: str, lemma: str) -> bool:
    """Spelling variants and derivations are not substitutes: grey/gray, cyclist/bicyclist."""
    return (
        candidate[:SHARED_PREFIX] == lemma[:SHARED_PREFIX]
        or candidate in lemma
        or lemma in candidate
        or difflib.SequenceMatcher(None, candidate, lemma).ratio() >= SPELLING_VARIANT_RATIO
    )


def hypernyms(synset: Synset) -> list[Synset]:
    return synset.hypernyms() + synset.instance_hypernyms()


def is_kind_of(wordnet: WordNetCorpusReader, token: Token, ancestors: frozenset[str]) -> bool:
    """Whether the first noun sense of ``token`` is, or descends from, one of ``ancestors``."""
    senses = wordnet.synsets(token.lemma_.lower(), "n")[:1]
    return any(
        sense.name() in ancestors
        or any(parent.name() in ancestors for parent in sense.closure(hypernyms))
        for sense in senses
    )


class SubstituteFinder:
    """WordNet's substitutes for a lemma, most plausible first, remembered per finder."""

    def __init__(self, wordnet: WordNetCorpusReader, common_words: frozenset[str]) -> None:
        self._wordnet = wordnet
        # Words that are one piece of the encoder's vocabulary (see WordNetRewriter).
        self._common_words = common_words

    @functools.lru_cache(maxsize=65536)  # noqa: B019 - one finder per rewriter, bounded
    def _word_count(self, word: str, pos: str) -> int:
        return sum(lemma.count() for lemma in self._wordnet.lemmas(word, pos))

    def _related(self, synset: Synset, pos: str, sense_rank: int) -> list[list[Synset]]:
        """Synset groups that may hold a substitute, safest relation first (hypernyms last)."""
        groups = [[synset]]
        if pos == "a":
            groups.append(synset.similar_tos())
        if sense_rank == 0 and pos == "n":
            # A common hypernym often reads naturally: toddler -> child, backpack -> bag.
            # (Grand-parents and verb troponyms were measured too: the encoder rejected
            # nearly all of them, "after the weather", "a man marching", at full cost.)
            groups.append(synset.hypernyms())
        return groups

    def _acceptable(self, word: str, lemma: str, synset: Synset, pos: str) -> bool:
        from lemminflect import getAllLemmas, getLemma

        if not (word.isalpha() and word.islower()) or word in BLOCKED_WORDS:
            return False
        if getLemma(word, upos=WORDNET_TO_UPOS[pos])[:1] not in ((), (word,)):
            return False  # a plural-only or inflected entry ("woods") re-inflects badly
        if word in STOP_WORDS or word in KEEP_LEMMAS or _same_word(word, lemma):
            return False
        if lemma in {form for forms in getAllLemmas(word).values() for form in forms}:
            return False  # an inflection of the original ("older" for "old")
        if word not in self._common_words and self._word_count(word, pos) < MIN_WORD_COUNT:
            return False
        # The substitute must commonly mean this ("cat" must not become "guy").
        if synset not in self._wordnet.synsets(word, pos)[:CANDIDATE_SENSES]:
            return False
        register = {domain.name() for domain in synset.usage_domains()}
        return not register & OFF_REGISTER_DOMAINS and not OFF_REGISTER_GLOSS.search(
            synset.definition()
        )

    @functools.lru_cache(maxsize=65536)  # noqa: B019
    def substitutes(self, lemma: str, pos: str, animate: bool = True) -> tuple[Substitute, ...]:
        """Single-word substitutes of ``lemma``, most plausible first (the encoder decides).

        ``animate=False`` (an adjective of a thing) skips senses WordNet glosses as said
        of persons: the encoder cannot tell "an elderly street" from "an old street".
        """
        ranks: dict[Substitute, tuple[int, int, int]] = {}
        seen: set[str] = set()
        for sense_rank, synset in enumerate(self._wordnet.synsets(lemma, pos)[:SOURCE_SENSES]):
            if not animate and PERSON_GLOSS.search(synset.definition()):
                continue
            for relation_rank, group in enumerate(self._related(synset, pos, sense_rank)):
                generalises = pos == "n" and relation_rank > 0
                for related in group:
                    if not animate and PERSON_GLOSS.search(related.definition()):
                        continue
                    for candidate in related.lemmas():
                        word = candidate.name()
                        if word in seen or not self._acceptable(word, lemma, related, pos):
                            continue
                        seen.add(word)
                        rank = (sense_rank, relation_rank, -self._word_count(word, pos))
                        ranks[Substitute(word, generalises)] = rank
        return tuple(sorted(ranks, key=lambda sub: (ranks[sub], sub.word)))[:MAX_CANDIDATES]
