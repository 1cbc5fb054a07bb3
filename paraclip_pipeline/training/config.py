"""Training hyper-parameters as data (read from YAML by the Dagster resource)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# A benchmark file or split named "test" (test.tsv, sts-test.csv, test/...): never tuned on.
_TEST_NAME = re.compile(r"(^|[/_.\-])test([/_.\-#]|$)", re.IGNORECASE)


class LossWeights(BaseModel):
    """Weights of the three ParaCLIP InfoNCE terms (the paper sums them with weight 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image_paraphrase2: float = Field(1.0, ge=0.0, description="L1(image, T'')")
    caption_paraphrase1: float = Field(1.0, ge=0.0, description="L2(caption, T')")
    paraphrase1_paraphrase2: float = Field(1.0, ge=0.0, description="L3(T', T'')")


class Selection(BaseModel):
    """What the hyper-parameters were chosen on, copied into the checkpoint manifest.

    Documentation of the run, not part of it: excluded from the run fingerprint. Test
    data is refused here, since a setting chosen on it makes its test numbers optimistic.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    chosen_on: tuple[str, ...] = Field(
        min_length=1, description="validation / dev benchmark files the settings were chosen on"
    )
    table: str | None = Field(None, description="where the comparison is, e.g. docs/training.md#x")
    note: str | None = None

    @field_validator("chosen_on")
    @classmethod
    def _no_test_data(cls, chosen_on: tuple[str, ...]) -> tuple[str, ...]:
        tuned_on_test = [name for name in chosen_on if _TEST_NAME.search(name)]
        if tuned_on_test:
            raise ValueError(
                f"settings must be chosen on validation or dev data, not test data: {tuned_on_test}"
            )
        return chosen_on


class TrainConfig(BaseModel):
    """Everything that decides a training run; hashed into the run fingerprint.

    ``batch_size`` is the global micro-batch (split evenly across ``nproc`` ranks, so
    contrastive negatives are the same whatever the process count); one optimizer step
    sees ``batch_size * grad_accum_steps`` rows.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    lr: float = Field(1e-5, gt=0.0)
    warmup_steps: int = Field(50, ge=0)
    lr_schedule: Literal["cosine", "constant"] = "cosine"
    weight_decay: float = Field(0.1, ge=0.0)
    batch_size: int = Field(256, ge=2)
    epochs: int = Field(1, ge=1)
    max_steps: int | None = Field(None, ge=1)
    grad_clip_norm: float | None = Field(1.0, gt=0.0)
    seed: int = 0
    seeds: tuple[int, ...] | None = Field(
        None,
        min_length=1,
        description="several seeds: one checkpoint per seed (replaces seed); None: [seed]",
    )
    bf16: bool = False
    grad_accum_steps: int = Field(1, ge=1)
    loss_weights: LossWeights = LossWeights()
    fixed_temperature: float | None = Field(
        None, gt=0.0, description="None: learn the model's logit scale; else logits / T"
    )
    checkpoint_every_steps: int = Field(100, ge=1)
    log_every_steps: int = Field(10, ge=1)
    nproc: int = Field(1, ge=1, description="1: in-process; >1: torchrun with DDP")
    shuffle_buffer: int = Field(
        262_144,
        ge=1,
        description="rows shuffled together: windows of consecutive rows, window order and "
        "rows within a window permuted each epoch (bounds the loader's memory; changes the order)",
    )
    loader_workers: int = Field(
        2, ge=0, description="DataLoader worker processes that read and tokenise (0: in the loop)"
    )
    device: Literal["cpu", "cuda"] = "cpu"
    selection: Selection | None = None

    @model_validator(mode="after")
    def _batch_splits_across_ranks(self) -> TrainConfig:
        if self.batch_size % self.nproc:
            raise ValueError(
                f"batch_size {self.batch_size} must be a multiple of nproc {self.nproc}"
            )
        if self.seeds is not None and len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct, got {list(self.seeds)}")
        return self

    @property
    def run_seeds(self) -> tuple[int, ...]:
        """The seeds trained, in order; the first one's checkpoint is the primary one."""
        return self.seeds if self.seeds is not None else (self.seed,)

    def for_seed(self, seed: int) -> TrainConfig:
        """The config one checkpoint of ``run_seeds`` is trained with: ``seed`` set, ``seeds``
        kept, so that checkpoint's manifest and fingerprint say which set it belongs to."""
        if seed not in self.run_seeds:
            raise ValueError(f"seed {seed} is not one of {list(self.run_seeds)}")
        return self.model_copy(update={"seed": seed})
