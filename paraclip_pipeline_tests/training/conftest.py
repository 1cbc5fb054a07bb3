"""Fixtures of the training tests: the tiny-random model, its data and a short config."""

from __future__ import annotations

import pytest

from paraclip_pipeline.modeling.factory import load_clip
from paraclip_pipeline.modeling.profiles import get_profile
from paraclip_pipeline.training.config import TrainConfig
from paraclip_pipeline_tests.training.support import make_embeddings, make_pairs


@pytest.fixture(scope="session")
def tiny_clip():
    return load_clip(get_profile("tiny-random"))


@pytest.fixture(scope="session")
def tiny_data(tiny_clip):
    pairs = make_pairs(24)
    return pairs, make_embeddings(pairs, tiny_clip.model_id, tiny_clip.embed_dim)


@pytest.fixture
def tiny_config() -> TrainConfig:
    return TrainConfig(
        lr=1e-3, warmup_steps=2, batch_size=8, epochs=2, checkpoint_every_steps=3, log_every_steps=1
    )
