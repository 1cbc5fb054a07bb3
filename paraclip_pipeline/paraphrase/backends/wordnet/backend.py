"""The WordNet backend: the deterministic offline rewriter behind the backend interface."""

from __future__ import annotations

from collections.abc import Sequence

from paraclip_pipeline.paraphrase.backends.base import (
    Completion,
    IdentityValue,
    ParaphraseBackend,
    ParaphraseRequest,
)
from paraclip_pipeline.paraphrase.backends.wordnet.resources import (
    load_sentence_encoder,
    load_spacy,
    load_wordnet,
)
from paraclip_pipeline.paraphrase.backends.wordnet.rewriter import GateThresholds, WordNetRewriter
from paraclip_pipeline.paraphrase.config import ParaphraserConfig
from paraclip_pipeline.paraphrase.prompts import Stage

# Bump when the rewriting rules change, so cached answers of the old rules are not reused.
RULES_VERSION = "wordnet-rules-2"


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
