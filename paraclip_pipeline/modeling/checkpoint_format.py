"""The checkpoint format: file names, the manifest, and sha256 verification (no torch).

One home for what a checkpoint directory holds, so reading one (``modeling.factory``
loading weights, ``lineage`` tracing captions) does not depend on the training package
that writes it::

    model.safetensors            state dict of the FULL open_clip model
    open_clip_config.json        {"model_cfg", "preprocess_cfg"}: open_clip "local-dir:" loading
    trained_caption_ids.parquet  the exact rows trained on (one caption_id column; DuckDB-joinable)
    hf_text/                     HF text tower export (save_pretrained + projection), if any
    tokenizer files              beside the config, for open_clip "local-dir:" (HF towers only)
    manifest.json                config, profile, code version, metrics, inputs, sha256s
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from paraclip_pipeline import schema
from paraclip_pipeline.storage import sha256_file

CHECKPOINT_FORMAT = "paraclip-checkpoint-v1"
WEIGHTS_FILE = "model.safetensors"
MANIFEST_FILE = "manifest.json"
OPEN_CLIP_CONFIG_FILE = "open_clip_config.json"
CAPTION_IDS_FILE = "trained_caption_ids.parquet"
HF_EXPORT_DIR = "hf_text"
HF_PROJECTION_FILE = "projection.safetensors"


class CheckpointError(RuntimeError):
    """A checkpoint or training state that is missing, incomplete or tampered with."""


def read_manifest(checkpoint_dir: Path) -> dict[str, Any]:
    manifest_path = Path(checkpoint_dir) / MANIFEST_FILE
    if not manifest_path.is_file():
        raise CheckpointError(f"{checkpoint_dir} is not a checkpoint: {MANIFEST_FILE} is missing")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{manifest_path} is not valid JSON: {error}") from error
    if not isinstance(manifest, dict) or manifest.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{manifest_path} is not a {CHECKPOINT_FORMAT} manifest")
    return manifest


def verify_checkpoint(checkpoint_dir: Path) -> dict[str, Any]:
    """The manifest, after checking every file it names against its recorded sha256."""
    checkpoint_dir = Path(checkpoint_dir)
    manifest = read_manifest(checkpoint_dir)
    for file_key, sha_key in (
        ("weights_file", "weights_sha256"),
        ("trained_caption_ids_file", "trained_caption_ids_sha256"),
    ):
        path = checkpoint_dir / manifest[file_key]
        if not path.is_file():
            raise CheckpointError(f"checkpoint {checkpoint_dir}: {path.name} is missing")
        actual = sha256_file(path)
        if actual != manifest[sha_key]:
            raise CheckpointError(
                f"checkpoint {checkpoint_dir}: {path.name} has sha256 {actual}, the manifest "
                f"records {manifest[sha_key]}; the file was modified or corrupted, refusing it"
            )
    return manifest


def trained_caption_ids_path(checkpoint_dir: Path, manifest: Mapping[str, Any]) -> Path:
    return Path(checkpoint_dir) / str(manifest.get("trained_caption_ids_file", CAPTION_IDS_FILE))


def read_trained_caption_ids(checkpoint_dir: Path, manifest: Mapping[str, Any]) -> pa.ChunkedArray:
    """The caption ids a checkpoint trained on, as an Arrow column (5M ids: about 100 MB,
    where a list of Python strings took several times that)."""
    path = trained_caption_ids_path(checkpoint_dir, manifest)
    return pq.read_table(path, columns=[schema.CAPTION_ID]).column(schema.CAPTION_ID)
