"""The rewriter: WordNet proposes, the sentence encoder disposes (see the package docstring)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from paraclip_pipeline.paraphrase.alt_text import normalise_alt_text
from paraclip_pipeline.paraphrase.backends.wordnet.candidates import (
    SubstituteFinder,
    is_kind_of,
)
from paraclip_pipeline.paraphrase.backends.wordnet.edits import Edit, render
from paraclip_pipeline.paraphrase.backends.wordnet.lexicon import (
    KEEP_LEMMAS,
    LIVING,
    MAX_CANDIDATES,
    NOUN_PHRASE_HEADS,
    PROPER_TO_COMMON_TAG,
    SOURCE_SENSES,
    SPACY_TO_WORDNET_POS,
)
from paraclip_pipeline.paraphrase.backends.wordnet.resources import RememberingEncoder
from paraclip_pipeline.paraphrase.backends.wordnet.structural import StructuralRewrites
from paraclip_pipeline.paraphrase.prompts import Stage

if TYPE_CHECKING:
    from nltk.corpus.reader.wordnet import WordNetCorpusReader
    from spacy.language import Language
    from spacy.tokens import Doc, Token

WINDOW = 2  # tokens either side of a word that its candidates are judged in
MIN_DELETION_LOSS = 0.05  # floor of the "deleting the word" loss the keep score divides by
STAGE1_SWAP_SHARE = 0.34  # "a few synonyms" in stage 1; stage 2 swaps everything it can


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
        self.candidates = SubstituteFinder(wordnet, self._common_words)
        self._structural = StructuralRewrites(wordnet)

    # --- slots ---------------------------------------------------------------------------

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
        animate = (
            pos != "a" or token.head.pos_ != "NOUN" or is_kind_of(self._wordnet, token.head, LIVING)
        )
        surfaces = []
        for word, generalises in self.candidates.substitutes(token.lemma_.lower(), pos, animate):
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
            (surface, render(doc, [Edit(start, end, surface, 0.0)], first, last), generalises)
            for surface, generalises in surfaces
        ]
        deleted = render(doc, [Edit(start, end, "", 0.0)], first, last)
        return _Slot(start, end, render(doc, [], first, last), deleted, candidates)

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
        structural = [(edit, render(doc, [edit])) for edit in self._structural.edits(doc)]
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
        text = render(plan.doc, edits)
        words = text.split(" ")
        for index, word in enumerate(words[:-1]):
            if word.lower() in ("a", "an") and words[index + 1][:1].isalpha():
                article = self._articles.a(words[index + 1]).split(" ", 1)[0]
                words[index] = article.capitalize() if word[:1].isupper() else article
        text = " ".join(words)
        if plan.source[:1].isupper():
            text = text[:1].upper() + text[1:]
        return text
