"""What ``paraclip evaluate --model`` names, loaded as a model encoder and its baseline.

The baseline is the profile's pretrained starting encoder (``load_clip(profile)``
without a checkpoint); a checkpoint names its profile in its manifest. The baseline and
Hugging Face model directories never change under their keys, so they declare an
``embedding_cache_key``: a digest of the weights (``LoadedClip.model_id`` digests only
the image tower, so the text side is digested here) and of the tokenizer's settings.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from paraclip_pipeline.evaluation.encoders import TextImageEncoder
from paraclip_pipeline.evaluation.public.embedding_cache import CacheableEncoder
from paraclip_pipeline.modeling.checkpoint_format import MANIFEST_FILE, read_manifest
from paraclip_pipeline.storage import sha256_file

if TYPE_CHECKING:
    from paraclip_pipeline.modeling.factory import LoadedClip

PRETRAINED = "pretrained"
ST_MODULES_FILE = "modules.json"
TRANSFORMER_MODULE = "Transformer"
# Modules the mean-pooling + L2-norm encoder reproduces (class names, any package path).
REPRODUCED_MODULES = {TRANSFORMER_MODULE, "Pooling", "Normalize"}
# Bumped when the way an encoder turns weights into embeddings changes (pooling, norm).
CACHE_KEY_VERSION = "v1"


def clip_cache_key(clip: LoadedClip) -> str:
    """Digest of everything that decides a LoadedClip's text embeddings: its profile (the
    tokenizer and context length) and every non-image weight (~0.3 s for MiniLM)."""
    digest = hashlib.sha256(json.dumps(clip.profile.to_dict(), sort_keys=True).encode())
    for name, tensor in sorted(clip.model.state_dict().items()):
        if not name.startswith("visual."):
            digest.update(f"{name}:{tensor.dtype}".encode())
            digest.update(tensor.detach().to("cpu").float().contiguous().numpy().tobytes())
    return f"clip-text-{CACHE_KEY_VERSION}:{clip.model_id}:{digest.hexdigest()}"


def cacheable_clip(clip: LoadedClip) -> CacheableEncoder:
    """The pretrained baseline, declared cacheable (its weights never change)."""
    return CacheableEncoder(clip, clip_cache_key(clip))


class ModelSpecError(ValueError):
    """``--model`` names nothing this command can load."""


class HfTextEncoder:
    """A Hugging Face model directory (bare, or in the sentence-transformers layout),
    embedded with mean pooling + L2 norm through the project's SentenceEncoder."""

    def __init__(self, model_dir: Path) -> None:
        from paraclip_pipeline.modeling.sentence_encoder import SentenceEncoder

        self.model_dir = Path(model_dir)
        self._weights_dir = transformer_dir(self.model_dir)
        self._encoder = SentenceEncoder(model_dir=self._weights_dir)

    @cached_property
    def embedding_cache_key(self) -> str:
        """Digest of the weights file and the configuration / tokenizer files beside it."""
        files = sorted(path for path in self._weights_dir.iterdir() if path.is_file())
        digest = hashlib.sha256()
        for path in files:
            digest.update(f"{path.name}:{sha256_file(path)};".encode())
        return f"hf-text-{CACHE_KEY_VERSION}:{digest.hexdigest()}"

    def encode_text(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        self._encoder.batch_size = batch_size
        return self._encoder.encode(list(texts))

    def encode_images(self, images: Sequence[Image.Image], batch_size: int = 64) -> np.ndarray:
        raise ModelSpecError(f"{self.model_dir} is a text-only model: it cannot embed images")


def transformer_dir(model_dir: Path) -> Path:
    """The directory holding the transformer weights (sentence-transformers may nest it).

    A sentence-transformers directory with modules beyond Transformer, Pooling and
    Normalize (a checkpoint's ``hf_text`` export holds a Dense projection unless the
    projection is the identity) is refused: this encoder would skip them.
    """
    modules_file = model_dir / ST_MODULES_FILE
    if modules_file.is_file():
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
        kinds = {str(module.get("type", "")).rsplit(".", 1)[-1]: module for module in modules}
        extra = sorted(set(kinds) - REPRODUCED_MODULES)
        if extra:
            raise ModelSpecError(
                f"{modules_file}: modules {', '.join(extra)} are not applied by this encoder; "
                "give the checkpoint directory (the one holding manifest.json) instead"
            )
        if TRANSFORMER_MODULE in kinds:
            return model_dir / kinds[TRANSFORMER_MODULE].get("path", "")
    if (model_dir / "config.json").is_file():
        return model_dir
    raise ModelSpecError(f"{model_dir}: no config.json and no Transformer module in modules.json")


@dataclass
class EvaluatedModels:
    """``models``: one encoder, or one per seed (several checkpoints), scored as their mean."""

    models: list[TextImageEncoder]
    baseline: TextImageEncoder
    profile: str
    description: str
    seeds: list[int | None] = field(default_factory=lambda: [None])


def load_models(model: str | Sequence[str], profile: str) -> EvaluatedModels:
    """``pretrained``, a checkpoint directory (its manifest's profile wins) or an HF model dir;
    several ``--model`` values must all be checkpoints of one profile (a run's seeds)."""
    if not isinstance(model, str):
        if len(model) == 1:
            return load_models(model[0], profile)
        return _load_seed_checkpoints([_checkpoint_path(name) for name in model])
    from paraclip_pipeline.modeling.factory import load_clip
    from paraclip_pipeline.modeling.profiles import get_profile

    if model == PRETRAINED:
        baseline = cacheable_clip(load_clip(get_profile(profile)))
        return EvaluatedModels([baseline], baseline, profile, f"pretrained ({profile})")
    path = Path(model).expanduser()
    if not path.is_dir():
        raise ModelSpecError(
            f"--model {model!r} is neither 'pretrained' nor a directory (a checkpoint or a "
            "Hugging Face model directory)"
        )
    if (path / MANIFEST_FILE).is_file():
        return _load_seed_checkpoints([path])
    text_model = HfTextEncoder(path)
    return EvaluatedModels(
        [text_model],
        cacheable_clip(load_clip(get_profile(profile))),
        profile,
        f"Hugging Face model {path}",
    )


def _checkpoint_path(model: str) -> Path:
    path = Path(model).expanduser()
    if not (path / MANIFEST_FILE).is_file():
        raise ModelSpecError(
            f"--model {model!r}: several --model values must each be a checkpoint directory "
            f"(holding {MANIFEST_FILE}), one per seed"
        )
    return path


def _load_seed_checkpoints(paths: list[Path]) -> EvaluatedModels:
    """Checkpoints and the pretrained baseline of their (one, shared) model profile."""
    from paraclip_pipeline.modeling.factory import load_clip
    from paraclip_pipeline.modeling.profiles import ModelProfile

    manifests = [read_manifest(path) for path in paths]
    profiles = [
        ModelProfile.from_dict(manifest["profile"], source=str(path / MANIFEST_FILE))
        for path, manifest in zip(paths, manifests, strict=True)
    ]
    if any(other != profiles[0] for other in profiles[1:]):
        names = ", ".join(f"{path}: {p.name}" for path, p in zip(paths, profiles, strict=True))
        raise ModelSpecError(f"the checkpoints have different model profiles ({names})")
    seeds = [manifest.get("config", {}).get("seed") for manifest in manifests]
    description = (
        f"checkpoint {paths[0]}"
        if len(paths) == 1
        else f"{len(paths)} checkpoints (seeds {', '.join(map(str, seeds))}): "
        + ", ".join(map(str, paths))
    )
    return EvaluatedModels(
        [load_clip(profiles[0], checkpoint=path) for path in paths],
        cacheable_clip(load_clip(profiles[0])),
        profiles[0].name,
        description,
        seeds if len(paths) > 1 else [None],
    )
