"""Rewrites that change a caption's construction rather than a word.

"a basket of apples" -> "an apple basket", "with" <-> "that has", "a photo of" removal,
"a farmer driving a tractor" -> "a tractor driven by a farmer". Each is proposed from
spaCy's parse and judged afterwards, as a whole sentence, by the sentence encoder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from paraclip_pipeline.paraphrase.backends.wordnet.candidates import is_kind_of
from paraclip_pipeline.paraphrase.backends.wordnet.edits import Edit
from paraclip_pipeline.paraphrase.backends.wordnet.lexicon import (
    GROUPINGS,
    KEEP_LEMMAS,
    PEOPLE,
    PHOTO_OF,
)

if TYPE_CHECKING:
    from nltk.corpus.reader.wordnet import WordNetCorpusReader
    from spacy.tokens import Doc, Token


class StructuralRewrites:
    """Proposes the structural edits of a parsed caption (WordNet says what is a group)."""

    def __init__(self, wordnet: WordNetCorpusReader) -> None:
        self._wordnet = wordnet

    def edits(self, doc: Doc) -> list[Edit]:
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
        if (
            list(kind.children)
            or kind.pos_ != "NOUN"
            or not is_kind_of(self._wordnet, head, GROUPINGS)
        ):
            return None
        return Edit(head.i, kind.i + 1, f"{kind.lemma_.lower()} {head.text}", 0.0, True)

    def _with_to_clause(self, token: Token) -> Edit | None:
        """After a noun: "a man with a beard" -> "a man who has a beard"."""
        if token.lower_ != "with" or token.dep_ != "prep" or token.head.pos_ != "NOUN":
            return None
        if token.head.i > token.i or not any(child.dep_ == "pobj" for child in token.children):
            return None
        person = is_kind_of(self._wordnet, token.head, PEOPLE)
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
