"""Paraphrase backends and the factory that builds the one a config names.

Each backend module imports its heavy dependency (llama.cpp, transformers, WordNet)
only when built, so importing this package costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from paraclip_pipeline.paraphrase.backends.base import ParaphraseBackend
from paraclip_pipeline.paraphrase.config import CO_CAPTIONS, ParaphraserConfig


def build_backend(
    config: ParaphraserConfig, *, caption_groups: Sequence[tuple[str, ...]] | None = None
) -> ParaphraseBackend:
    """The backend ``config.backend`` names; heavy imports happen only for the chosen one.

    ``caption_groups`` (``co_captions.caption_groups`` of the shard) is what the
    ``co_captions`` backend answers from; the other backends take none.
    """
    if config.backend == CO_CAPTIONS:
        if caption_groups is None:
            raise ValueError("backend 'co_captions' is built per shard, from its caption groups")
        from paraclip_pipeline.paraphrase.backends.co_captions import CoCaptionsBackend

        return CoCaptionsBackend(config, caption_groups)
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
