"""Build an open_clip model from a profile (optionally a trained checkpoint) and encode with it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from PIL import Image

from paraclip_pipeline.modeling.checkpoint_format import (
    WEIGHTS_FILE,
    CheckpointError,
    verify_checkpoint,
)
from paraclip_pipeline.modeling.profiles import MODEL_CONFIGS_DIR, ModelProfile

_configs_registered = False


def register_model_configs() -> None:
    """Make the JSON configs in ``model_configs/`` known to open_clip by file stem (once)."""
    global _configs_registered
    if not _configs_registered:
        open_clip.add_model_config(MODEL_CONFIGS_DIR)
        _configs_registered = True


def resolved_model_config(profile: ModelProfile) -> dict[str, Any]:
    """The profile's open_clip config with a local HF text directory filled in (if any)."""
    config = profile.model_config()
    text_dir = profile.resolved_hf_text_dir()
    if text_dir is not None:
        config["text_cfg"] = {
            **config["text_cfg"],
            "hf_model_name": str(text_dir),
            "hf_tokenizer_name": str(text_dir),
        }
    config["vision_cfg"] = {**config["vision_cfg"], "image_size": profile.image_size}
    return config


def create_open_clip_model(
    profile: ModelProfile, weights_file: Path | None = None, device: str = "cpu"
) -> tuple[torch.nn.Module, Callable[[Image.Image], torch.Tensor]]:
    """open_clip model + eval preprocessing; random parts are seeded by ``profile.init_seed``."""
    register_model_configs()
    config = resolved_model_config(profile)
    pretrained = str(weights_file) if weights_file is not None else profile.pretrained
    overrides: dict[str, Any] = {}
    if "hf_model_name" in config["text_cfg"]:
        # Pretrained HF text weights are only worth loading when no full checkpoint follows.
        overrides["text_cfg"] = {**config["text_cfg"], "hf_model_pretrained": pretrained is None}
    # A forked, seeded RNG: every process builds the same random image tower, and the
    # caller's global RNG stream is left untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(profile.init_seed)
        model, _, preprocess = open_clip.create_model_and_transforms(
            profile.open_clip_model,
            pretrained=pretrained,
            device=device,
            force_image_size=profile.image_size,
            **overrides,
        )
    return model, preprocess


def create_tokenizer(profile: ModelProfile) -> Callable[..., torch.Tensor]:
    register_model_configs()
    config = resolved_model_config(profile)
    text_cfg = config["text_cfg"]
    if "hf_tokenizer_name" in text_cfg:
        return open_clip.tokenizer.HFTokenizer(
            text_cfg["hf_tokenizer_name"], context_length=text_cfg.get("context_length", 77)
        )
    return open_clip.get_tokenizer(profile.open_clip_model)


def image_tower_digest(model: torch.nn.Module) -> str:
    """sha256 over the image tower's parameter names and bytes (identifies frozen weights)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.visual.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def trailing_pad_id(model: torch.nn.Module) -> int | None:
    """Pad id whose trailing columns can be cut from a token batch, or None.

    Only Hugging Face text towers qualify: they mask padding through the attention mask
    and use absolute positions, so dropping all-padding columns at the end changes no
    output, while open_clip's own text transformer adds a fixed-length position table.
    """
    text = getattr(model, "text", None)
    if isinstance(text, open_clip.hf_model.HFTextEncoder):
        return int(text.config.pad_token_id)
    return None


def trim_trailing_padding(tokens: torch.Tensor, pad_id: int | None) -> torch.Tensor:
    """Cut the columns after the last non-padding token of the batch (captions are short)."""
    if pad_id is None:
        return tokens
    used = (tokens != pad_id).any(dim=0).nonzero()
    return tokens[:, : int(used.max()) + 1] if len(used) else tokens[:, :1]


@dataclass
class LoadedClip:
    """A ready-to-use model: encoders return L2-normalised float32 numpy rows."""

    model: torch.nn.Module
    preprocess: Callable[[Image.Image], torch.Tensor]
    tokenizer: Callable[..., torch.Tensor]
    model_id: str
    embed_dim: int
    profile: ModelProfile
    device: str = "cpu"
    # Other names under which precomputed image embeddings of these weights are accepted.
    model_id_aliases: tuple[str, ...] = field(default_factory=tuple)

    def accepts_image_model(self, image_embedding_model: str | None) -> bool:
        return image_embedding_model in (self.model_id, *self.model_id_aliases)

    def encode_text(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Embed texts in order of token length, so each batch carries little padding.

        With an HF text tower the trailing all-padding columns of a batch are cut; sorting
        first makes that cut deep (1.8x faster on STS sentences than input order with
        batches of 256). Rows come back in the caller's order.
        """
        self.model.eval()
        if not len(texts):
            return np.zeros((0, self.embed_dim), np.float32)
        pad_id = trailing_pad_id(self.model)
        tokens = self.tokenizer(list(texts))
        if pad_id is not None:
            order = torch.argsort((tokens != pad_id).sum(dim=1), stable=True)
        else:
            order = torch.arange(len(texts))
        features = torch.empty((len(texts), self.embed_dim), dtype=torch.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                rows = order[start : start + batch_size]
                batch = trim_trailing_padding(tokens[rows], pad_id).to(self.device)
                features[rows] = self.model.encode_text(batch, normalize=True).float().cpu()
        return features.numpy()

    def encode_images(self, images: Sequence[Image.Image], batch_size: int = 64) -> np.ndarray:
        self.model.eval()
        chunks = [np.zeros((0, self.embed_dim), np.float32)]
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                pixels = torch.stack(
                    [
                        self.preprocess(image.convert("RGB"))
                        for image in images[start : start + batch_size]
                    ]
                ).to(self.device)
                features = self.model.encode_image(pixels, normalize=True)
                chunks.append(features.float().cpu().numpy())
        return np.concatenate(chunks)


def _model_ids(profile: ModelProfile, model: torch.nn.Module) -> tuple[str, tuple[str, ...]]:
    source = profile.pretrained if profile.pretrained else f"random-seed{profile.init_seed}"
    if profile.pretrained and Path(profile.pretrained).is_file():
        source = "file"
    model_id = f"{profile.open_clip_model}/{source}@{image_tower_digest(model)[:16]}"
    aliases: tuple[str, ...] = ()
    if profile.pretrained and source != "file":
        # How open_clip users usually name tagged weights (LAION ships such labels).
        aliases = (
            f"{profile.open_clip_model}:{profile.pretrained}",
            f"{profile.open_clip_model}/{profile.pretrained}",
        )
    return model_id, aliases


def load_clip(
    profile: ModelProfile, checkpoint: Path | None = None, device: str = "cpu"
) -> LoadedClip:
    """Build the profile's model; with ``checkpoint``, load its sha256-verified weights."""
    weights_file = None
    if checkpoint is not None:
        manifest = verify_checkpoint(checkpoint)
        trained_on = manifest["profile"]["open_clip_model"]
        if trained_on != profile.open_clip_model:
            raise CheckpointError(
                f"checkpoint {checkpoint} holds a {trained_on!r} model, "
                f"but profile {profile.name!r} builds {profile.open_clip_model!r}"
            )
        weights_file = Path(checkpoint) / WEIGHTS_FILE
    model, preprocess = create_open_clip_model(profile, weights_file, device)
    model.eval()
    model_id, aliases = _model_ids(profile, model)
    return LoadedClip(
        model=model,
        preprocess=preprocess,
        tokenizer=create_tokenizer(profile),
        model_id=model_id,
        embed_dim=int(resolved_model_config(profile)["embed_dim"]),
        profile=profile,
        device=device,
        model_id_aliases=aliases,
    )
