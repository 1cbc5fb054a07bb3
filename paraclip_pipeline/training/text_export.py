"""The fine-tuned text tower as a directory users' tools load (``hf_text/`` of a checkpoint).

It is written in sentence-transformers' classic layout, the one all-MiniLM-L6-v2 itself
ships in and every sentence-transformers release from 2.x to 6.x reads, so
``SentenceTransformer(dir)`` gives the project's text embeddings (tested to 1e-5)::

    config.json, model.safetensors, tokenizer files  the transformer (plain transformers too)
    modules.json                       Transformer -> Pooling [-> Dense ...] -> Normalize
    sentence_bert_config.json          max_seq_length = the tokenizer's context length
    config_sentence_transformers.json  format version, cosine similarity
    1_Pooling/config.json              open_clip's pooler as a pooling mode
    2_Dense/ ...                       one per linear layer of the projection; none when the
                                       projection is the identity
    N_Normalize/                       L2 normalisation, as encode_text(normalize=True)
    projection.safetensors, paraclip_text_head.json   the head, for plain transformers users

A pooler or projection sentence-transformers cannot express (open_clip's ``cls_pooler``
uses BERT's pooler output; its ``max_pooler`` masks the wrong tokens) gets no
sentence-transformers files, and the head file says why. Files are written into the
checkpoint's staging directory, which is renamed into place as a whole.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import transformers
from safetensors.torch import save_file

from paraclip_pipeline.modeling.checkpoint_format import HF_PROJECTION_FILE
from paraclip_pipeline.storage import write_text_atomic

TEXT_HEAD_FILE = "paraclip_text_head.json"
ST_MODULES_FILE = "modules.json"
ST_TYPE = "sentence_transformers.models.{}"
# The layout's version: what sentence-transformers compares against its own on loading.
ST_FORMAT_VERSION = "2.0.0"
IDENTITY_ACTIVATION = "torch.nn.modules.linear.Identity"
# open_clip pooler class -> the sentence-transformers pooling flag that computes the same.
POOLING_MODES = {
    "MeanPooler": "pooling_mode_mean_tokens",
    "ClsLastHiddenStatePooler": "pooling_mode_cls_token",
}
ALL_POOLING_FLAGS = (
    "pooling_mode_cls_token",
    "pooling_mode_mean_tokens",
    "pooling_mode_max_tokens",
    "pooling_mode_mean_sqrt_len_tokens",
)


def cpu_state(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # Clones: safetensors refuses tensors that share storage.
    return {name: t.detach().to("cpu").clone().contiguous() for name, t in tensors.items()}


def _write_json(value: Any, target: Path) -> None:
    write_text_atomic(json.dumps(value, indent=2), target)


def dense_layers(projection: torch.nn.Module) -> list[tuple[torch.nn.Linear, str]] | None:
    """The projection as (linear layer, activation class path) pairs; None if it is not
    a chain of linear layers each followed by at most one parameter-free torch activation."""
    modules = list(projection) if isinstance(projection, torch.nn.Sequential) else [projection]
    layers: list[tuple[torch.nn.Linear, str]] = []
    for module in modules:
        if isinstance(module, torch.nn.Identity):
            continue
        if isinstance(module, torch.nn.Linear):
            layers.append((module, IDENTITY_ACTIVATION))
            continue
        kind = type(module)
        is_activation = kind.__module__ == "torch.nn.modules.activation"
        if not (layers and layers[-1][1] == IDENTITY_ACTIVATION and is_activation):
            return None
        if any(True for _ in module.parameters()):
            return None
        layers[-1] = (layers[-1][0], f"{kind.__module__}.{kind.__name__}")
    return layers


def _unsupported(text: torch.nn.Module) -> str | None:
    """Why sentence-transformers cannot reproduce this text tower, or None when it can."""
    pooler = type(text.pooler).__name__
    if pooler not in POOLING_MODES:
        return f"open_clip pooler {pooler} has no sentence-transformers pooling mode"
    if dense_layers(text.proj) is None:
        return f"projection {type(text.proj).__name__} is not a chain of linear layers"
    return None


def _module(index: int, name: str, path: str) -> dict[str, Any]:
    return {"idx": index, "name": str(index), "path": path, "type": ST_TYPE.format(name)}


def _write_sentence_transformers(text: torch.nn.Module, context_length: int, out: Path) -> None:
    width = int(text.config.hidden_size)
    modules = [_module(0, "Transformer", ""), _module(1, "Pooling", "1_Pooling")]
    flag = POOLING_MODES[type(text.pooler).__name__]
    pooling = {"word_embedding_dimension": width} | {f: f == flag for f in ALL_POOLING_FLAGS}
    _write_json(pooling, out / "1_Pooling" / "config.json")
    for linear, activation in dense_layers(text.proj) or []:
        index = len(modules)
        folder = f"{index}_Dense"
        modules.append(_module(index, "Dense", folder))
        dense = {
            "in_features": linear.in_features,
            "out_features": linear.out_features,
            "bias": linear.bias is not None,
            "activation_function": activation,
        }
        _write_json(dense, out / folder / "config.json")
        weights = {f"linear.{name}": t for name, t in cpu_state(linear.state_dict()).items()}
        save_file(weights, out / folder / "model.safetensors")
    folder = f"{len(modules)}_Normalize"
    modules.append(_module(len(modules), "Normalize", folder))
    (out / folder).mkdir()
    _write_json(modules, out / ST_MODULES_FILE)
    _write_json(
        {"max_seq_length": context_length, "do_lower_case": False},
        out / "sentence_bert_config.json",
    )
    versions = {
        "sentence_transformers": ST_FORMAT_VERSION,
        "transformers": transformers.__version__,
        "pytorch": torch.__version__,
    }
    _write_json(
        {
            "__version__": versions,
            "prompts": {},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
        out / "config_sentence_transformers.json",
    )


def export_text_tower(model: torch.nn.Module, tokenizer: Any, export_dir: Path) -> None:
    """Write the HF text tower of ``model`` (an open_clip ``HFTextEncoder``) to ``export_dir``.

    ``tokenizer`` is open_clip's ``HFTokenizer``: its wrapped tokenizer is saved, and its
    context length is the sentence-transformers truncation length.
    """
    text = model.text
    text.transformer.save_pretrained(export_dir)
    tokenizer.tokenizer.save_pretrained(export_dir)
    projection = cpu_state(text.proj.state_dict())
    # An identity projection (text width == embed_dim) has no weights and no file.
    if projection:
        save_file(projection, export_dir / HF_PROJECTION_FILE)
    unsupported = _unsupported(text)
    if unsupported is None:
        _write_sentence_transformers(text, int(tokenizer.context_length), export_dir)
    head = {
        "pooler": type(text.pooler).__name__,
        "projection_file": HF_PROJECTION_FILE if projection else None,
        "output_dim": text.output_dim,
        "normalize": True,
        "usage": "masked pooling of last_hidden_state, then the projection (if any), then "
        "L2-normalise",
        "sentence_transformers": unsupported or "SentenceTransformer(this directory)",
    }
    _write_json(head, export_dir / TEXT_HEAD_FILE)
