"""Training the tiny-random profile in tests, interrupting a run at a step, and comparing a
resumed run with a reference."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import torch
from safetensors.torch import load_file

from paraclip_pipeline.modeling.checkpoint_format import WEIGHTS_FILE
from paraclip_pipeline.modeling.profiles import get_profile
from paraclip_pipeline.training.config import TrainConfig
from paraclip_pipeline.training.loop import TrainResult, train_text_encoder

PROFILE = get_profile("tiny-random")


def train_tiny(
    tiny_data: tuple[pa.Table, pa.Table],
    config: TrainConfig,
    output_dir: Path,
    inputs: list[dict[str, Any]] | None = None,
    **kwargs: Any,
) -> TrainResult:
    """The tiny profile trained in this process on the ``tiny_data`` fixture's tables."""
    pairs, embeddings = tiny_data
    return train_text_encoder(
        pairs,
        embeddings,
        profile=PROFILE,
        config=config,
        output_dir=output_dir,
        inputs=inputs or [],
        **kwargs,
    )


def stop_at_step(step: int) -> Callable[[str], None]:
    """A training log callback that interrupts the run when it logs ``step <step>/``."""

    def log(message: str) -> None:
        if message.startswith(f"step {step}/"):
            raise KeyboardInterrupt

    return log


def assert_same_training(reference: TrainResult, resumed: TrainResult) -> None:
    expected = load_file(reference.checkpoint_dir / WEIGHTS_FILE)
    actual = load_file(resumed.checkpoint_dir / WEIGHTS_FILE)
    assert all(torch.equal(expected[name], actual[name]) for name in expected)
    assert resumed.loss_history == reference.loss_history
