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

Modules: ``lexicon`` (word lists), ``resources`` (WordNet, spaCy and MiniLM loaders),
``candidates`` (WordNet's substitutes for a word), ``structural`` (construction
rewrites), ``edits``, ``rewriter`` (the encoder gate) and ``backend``.
"""

from paraclip_pipeline.paraphrase.backends.wordnet.backend import RULES_VERSION, WordNetBackend
from paraclip_pipeline.paraphrase.backends.wordnet.resources import (
    RememberingEncoder,
    load_sentence_encoder,
    load_spacy,
    load_wordnet,
)
from paraclip_pipeline.paraphrase.backends.wordnet.rewriter import GateThresholds, WordNetRewriter

__all__ = [
    "RULES_VERSION",
    "GateThresholds",
    "RememberingEncoder",
    "WordNetBackend",
    "WordNetRewriter",
    "load_sentence_encoder",
    "load_spacy",
    "load_wordnet",
]
