"""Two steps on the offline MiniLM profile: HF text export and plain open_clip loading."""

from __future__ import annotations

import numpy as np
import open_clip
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel

from paraclip_pipeline.modeling.checkpoint_format import (
    HF_EXPORT_DIR,
    HF_PROJECTION_FILE,
    WEIGHTS_FILE,
)
from paraclip_pipeline.modeling.factory import load_clip, trailing_pad_id, trim_trailing_padding
from paraclip_pipeline.modeling.profiles import get_profile
from paraclip_pipeline.modeling.sentence_encoder import SentenceEncoder
from paraclip_pipeline.training.config import TrainConfig
from paraclip_pipeline.training.loop import TextFeatures, train_text_encoder
from paraclip_pipeline.training.optim import freeze_image_tower
from paraclip_pipeline_tests.training.support import make_embeddings, make_pairs


def test_minilm_checkpoint_exports_hf_text_tower(tmp_path) -> None:
    profile = get_profile("offline-minilm")
    clip = load_clip(profile)
    pairs = make_pairs(8)
    embeddings = make_embeddings(pairs, clip.model_id, clip.embed_dim)
    config = TrainConfig(lr=1e-4, warmup_steps=0, batch_size=4, max_steps=2)
    result = train_text_encoder(
        pairs, embeddings, profile=profile, config=config, output_dir=tmp_path / "run", inputs=[]
    )
    saved = load_file(result.checkpoint_dir / WEIGHTS_FILE)
    export = result.checkpoint_dir / HF_EXPORT_DIR
    encoder = AutoModel.from_pretrained(export, add_pooling_layer=False)
    encoder_state = encoder.state_dict()
    changed = [
        name
        for name, tensor in encoder_state.items()
        if not torch.equal(tensor, clip.model.text.transformer.state_dict()[name])
    ]
    assert changed and all(
        torch.equal(tensor, saved[f"text.transformer.{name}"])
        for name, tensor in encoder_state.items()
    )
    # MiniLM's width is embed_dim: the projection is the identity, with no weights to export.
    assert not (export / HF_PROJECTION_FILE).exists()
    assert not any(name.startswith("text.proj") for name in saved)
    model, _, _ = open_clip.create_model_and_transforms(f"local-dir:{result.checkpoint_dir}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{result.checkpoint_dir}")
    reloaded = load_clip(profile, checkpoint=result.checkpoint_dir)
    with torch.inference_mode():
        plain = model.eval().encode_text(tokenizer(["a red boat"]), normalize=True).numpy()
    torch.testing.assert_close(
        torch.from_numpy(plain), torch.from_numpy(reloaded.encode_text(["a red boat"]))
    )


def test_trimming_trailing_padding_keeps_text_features() -> None:
    clip = load_clip(get_profile("offline-minilm"))
    tokens = clip.tokenizer(["a dog", "two people riding bicycles through a busy street"])
    pad_id = trailing_pad_id(clip.model)
    trimmed = trim_trailing_padding(tokens, pad_id)
    assert pad_id == 0 and trimmed.shape[1] < tokens.shape[1] // 3
    with torch.inference_mode():
        full = clip.model.encode_text(tokens, normalize=True)
        short = TextFeatures(clip.model)(tokens)[0]
    torch.testing.assert_close(torch.nn.functional.normalize(short, dim=-1), full)


def test_minilm_resume_is_exact_despite_dropout(tmp_path) -> None:
    profile = get_profile("offline-minilm")
    pairs = make_pairs(4, heldout=0)
    clip = load_clip(profile)
    embeddings = make_embeddings(pairs, clip.model_id, clip.embed_dim)
    config = TrainConfig(
        lr=1e-4,
        warmup_steps=0,
        batch_size=4,
        max_steps=2,
        checkpoint_every_steps=1,
        log_every_steps=1,
    )

    def train(output_dir, log=None):
        return train_text_encoder(
            pairs,
            embeddings,
            profile=profile,
            config=config,
            output_dir=output_dir,
            inputs=[],
            log=log,
        )

    def interrupt(message: str) -> None:
        if message.startswith("step 1/"):
            raise KeyboardInterrupt

    reference = train(tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "resumed", log=interrupt)
    resumed = train(tmp_path / "resumed")
    assert resumed.manifest["weights_sha256"] == reference.manifest["weights_sha256"]


PARITY_TEXTS = [
    "A man riding a wave on top of a surfboard.",
    "two dogs",
    "A kitchen with white cabinets, a stove and a window above the sink",
]


def test_offline_baseline_is_plain_mean_pooled_minilm() -> None:
    """The report's baseline is all-MiniLM-L6-v2 exactly as its users load it."""
    clip = load_clip(get_profile("offline-minilm"))
    assert isinstance(clip.model.text.proj, torch.nn.Identity)
    plain = SentenceEncoder().encode(PARITY_TEXTS)
    np.testing.assert_allclose(clip.encode_text(PARITY_TEXTS), plain, atol=1e-5)


def test_training_model_at_step_zero_is_the_baseline() -> None:
    """A freshly built training model, through the training forward, gives the baseline."""
    profile = get_profile("offline-minilm")
    clip = load_clip(profile)
    model = clip.model
    freeze_image_tower(model, TrainConfig())
    model.eval()  # dropout off: the comparison is of weights, not of dropout noise
    with torch.inference_mode():
        features, _ = TextFeatures(model)(clip.tokenizer(PARITY_TEXTS))
    step_zero = torch.nn.functional.normalize(features, dim=-1).numpy()
    np.testing.assert_allclose(step_zero, SentenceEncoder().encode(PARITY_TEXTS), atol=1e-5)
