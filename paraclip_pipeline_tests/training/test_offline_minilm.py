"""Two steps on the offline MiniLM profile: the HF / sentence-transformers export of the
text tower, and plain open_clip loading of a moved checkpoint."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from safetensors.torch import load_file
from sentence_transformers import SentenceTransformer
from torch.nn import GELU, Identity, LayerNorm, Linear, Sequential
from transformers import AutoModel

from paraclip_pipeline.modeling.checkpoint_format import (
    HF_EXPORT_DIR,
    HF_PROJECTION_FILE,
    OPEN_CLIP_CONFIG_FILE,
    WEIGHTS_FILE,
)
from paraclip_pipeline.modeling.factory import load_clip, trailing_pad_id, trim_trailing_padding
from paraclip_pipeline.modeling.pretrained import minilm_model_dir
from paraclip_pipeline.modeling.profiles import get_profile
from paraclip_pipeline.modeling.sentence_encoder import SentenceEncoder
from paraclip_pipeline.training.config import TrainConfig
from paraclip_pipeline.training.loop import train_text_encoder
from paraclip_pipeline.training.optim import freeze_image_tower
from paraclip_pipeline.training.step import TextFeatures
from paraclip_pipeline.training.text_export import dense_layers
from paraclip_pipeline_tests.training.support import make_embeddings, make_pairs

TEXTS = [
    "a red boat",
    "Two people riding bicycles   through a busy street at night.",
    "an old clock tower",
]


def test_minilm_checkpoint_exports_hf_text_tower(tmp_path, monkeypatch) -> None:
    profile = get_profile("offline-minilm")
    clip = load_clip(profile)
    pairs = make_pairs(8)
    embeddings = make_embeddings(pairs, clip.model_id, clip.embed_dim)
    config = TrainConfig(lr=1e-4, warmup_steps=0, batch_size=4, max_steps=2)
    result = train_text_encoder(
        pairs, embeddings, profile=profile, config=config, output_dir=tmp_path / "run", inputs=[]
    )
    # Moved: nothing in the checkpoint may point back at where it was written.
    moved = Path(shutil.move(result.checkpoint_dir, tmp_path / "elsewhere" / "copy"))
    config_text = (moved / OPEN_CLIP_CONFIG_FILE).read_text(encoding="utf-8")
    assert str(tmp_path) not in config_text and str(minilm_model_dir()) not in config_text
    text_cfg = json.loads(config_text)["model_cfg"]["text_cfg"]
    assert text_cfg["hf_model_name"] == text_cfg["hf_tokenizer_name"] == HF_EXPORT_DIR
    saved = load_file(moved / WEIGHTS_FILE)
    export = moved / HF_EXPORT_DIR
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
    reloaded = load_clip(profile, checkpoint=moved)
    expected = reloaded.encode_text(TEXTS)
    sentence_model = SentenceTransformer(str(export), device="cpu")
    modules = json.loads((export / "modules.json").read_text(encoding="utf-8"))
    linear_layers = [m for m in reloaded.model.text.proj.modules() if isinstance(m, Linear)]
    assert [module["path"] for module in modules if "Dense" in module["type"]] == [
        f"{2 + index}_Dense" for index in range(len(linear_layers))
    ]
    np.testing.assert_allclose(sentence_model.encode(TEXTS), expected, atol=1e-5)
    monkeypatch.chdir(moved)  # the config's HF path is relative to the checkpoint
    model, _, _ = open_clip.create_model_and_transforms(f"local-dir:{moved}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{moved}")
    with torch.inference_mode():
        plain = model.eval().encode_text(tokenizer(TEXTS), normalize=True).numpy()
    np.testing.assert_allclose(plain, expected, atol=1e-5)


def test_projection_chains_map_to_dense_layers() -> None:
    mlp = Sequential(Linear(8, 6, bias=False), GELU(), Linear(6, 4, bias=False))
    assert [(layer.out_features, act.rsplit(".", 1)[1]) for layer, act in dense_layers(mlp)] == [
        (6, "GELU"),
        (4, "Identity"),
    ]
    assert dense_layers(Identity()) == []
    assert dense_layers(Sequential(Linear(8, 4), LayerNorm(4))) is None
    assert dense_layers(Sequential(GELU(), Linear(8, 4))) is None


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
