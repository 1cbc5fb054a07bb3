"""The one interface every backend implements, and what flows through it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from paraclip_pipeline.paraphrase.config import ParaphraserConfig
from paraclip_pipeline.paraphrase.prompts import Stage

IdentityValue = str | int | float | bool | None


@dataclass(frozen=True)
class ParaphraseRequest:
    stage: Stage
    text: str  # the caption (stage 1) or T' (stage 2)
    prompt: str  # the filled template, for backends that take instructions


@dataclass(frozen=True)
class Completion:
    """One backend answer: raw ``text`` (hygiene comes later) or an ``error`` to retry next run."""

    text: str | None = None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __post_init__(self) -> None:
        if (self.text is None) == (self.error is None):
            raise ValueError("a Completion carries exactly one of text and error")


class ParaphraseBackend(ABC):
    """Turns requests into completions, one per request, in request order.

    ``calls`` counts requests sent to the model, so tests can assert that a rerun
    answered from the cache made none.
    """

    name: str
    default_model: str

    def __init__(self, config: ParaphraserConfig) -> None:
        self.config = config
        self.calls = 0

    @property
    def model_name(self) -> str:
        return self.config.model or self.default_model

    def cache_identity(self, stage: Stage) -> dict[str, IdentityValue]:
        """Everything besides the input text that decides the answer; hashed into the cache key."""
        config = self.config
        return {
            "backend": self.name,
            "model": self.model_name,
            "template": config.template(stage),
            "few_shot": config.few_shot,
            "temperature": config.temperature,
            "top_p": config.top_p,
            "max_tokens": config.max_tokens,
            "seed": config.seed,
        }

    def answers(self, request: ParaphraseRequest) -> bool:
        """False when this backend has no answer for the request by construction (not a
        failure to retry): the engine then marks the row ``skipped`` and asks nothing."""
        return True

    def generate(self, requests: Sequence[ParaphraseRequest]) -> list[Completion]:
        self.calls += len(requests)
        completions = self._generate(requests)
        if len(completions) != len(requests):
            raise RuntimeError(
                f"{self.name} backend returned {len(completions)} answers "
                f"for {len(requests)} requests"
            )
        return completions

    def generate_stream(
        self, requests: Sequence[ParaphraseRequest], *, batch_size: int, max_wait_s: float
    ) -> Iterator[list[tuple[int, Completion]]]:
        """Completions as batches of ``(request index, completion)``, each ready to commit.

        A batch holds at most ``batch_size`` answers and waits at most ``max_wait_s``
        after its first one. This default answers ``batch_size`` requests at a time
        through :meth:`generate`, in order; a backend with requests in flight (the
        openai-compatible one) overrides it to keep its window full across batches.
        """
        for start in range(0, len(requests), batch_size):
            chunk = requests[start : start + batch_size]
            yield list(enumerate(self.generate(chunk), start))

    @abstractmethod
    def _generate(self, requests: Sequence[ParaphraseRequest]) -> list[Completion]: ...

    def close(self) -> None:
        """Release models or connections; the default backend holds none."""
        return

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model_name!r}, calls={self.calls})"
