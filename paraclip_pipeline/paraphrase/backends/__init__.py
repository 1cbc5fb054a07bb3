"""Paraphrase backends and the factory that builds the one a config names.

Each backend module imports its heavy dependency (llama.cpp, transformers, WordNet)
only when built, so importing this package costs nothing.
"""

from __future__ import annotations

from paraclip_pipeline.paraphrase.backends.base import ParaphraseBackend
from paraclip_pipeline.paraphrase.config import ParaphraserConfig


def build_backend(config: ParaphraserConfig) -> ParaphraseBackend:
    """The backend ``config.backend`` names; heavy imports happen only for the chosen one."""
    if config.backend == "wordnet":
        from paraclip_pipeline.paraphrase.backends.wordnet import WordNetBackend

        return WordNetBackend(config)
    if config.backend == "openai_compatible":
        from paraclip_pipeline.paraphrase.backends.openai_compatible import (
            OpenAICompatibleBackend,
        )

        return OpenAICompatibleBackend(config)
    if config.backend == "llama_cpp":
        from paraclip_pipeline.paraphrase.backends.llama_cpp import LlamaCppBackend

        return LlamaCppBackend(config)
    from paraclip_pipeline.paraphrase.backends.transformers_local import TransformersBackend

    return TransformersBackend(config)


__all__ = ["ParaphraseBackend", "build_backend"]
