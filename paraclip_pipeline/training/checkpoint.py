"""Writing checkpoints (torch side) and the resumable training state.

The format (file names, manifest, verification) lives in ``modeling.checkpoint_format``,
so readers never import the training package. The final checkpoint directory is built in
a temporary sibling, then renamed into place so a reader never sees half of one.

Training state (``<output_dir>.train-state/step-NNNNNNNN/``) is written every N steps
the same way and removed once the final checkpoint is in place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import open_clip
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from safetensors.torch import load_file, save_file

from paraclip_pipeline import schema
from paraclip_pipeline.modeling.checkpoint_format import (
    CAPTION_IDS_FILE,
    CHECKPOINT_FORMAT,
    HF_EXPORT_DIR,
    MANIFEST_FILE,
    OPEN_CLIP_CONFIG_FILE,
    WEIGHTS_FILE,
    CheckpointError,
)
from paraclip_pipeline.modeling.profiles import ModelProfile
from paraclip_pipeline.storage import (
    parquet_stream,
    row_group_batches,
    sha256_file,
    write_text_atomic,
)
from paraclip_pipeline.training.text_export import cpu_state, export_text_tower

STATE_WEIGHTS_FILE = "trainable.safetensors"
STATE_TORCH_FILE = "optimizer_scheduler.pt"
STATE_META_FILE = "state.json"


def training_sources() -> list[Path]:
    """Every module of the training package, found by glob (a new file is included).

    A change to any of them changes what a checkpoint means, so all are hashed into its
    code version.
    """
    return sorted(Path(__file__).parent.glob("*.py"))


def code_version() -> dict[str, str]:
    digest = hashlib.sha256()
    for source in training_sources():
        digest.update(source.name.encode())
        digest.update(source.read_bytes())
    return {
        "paraclip_pipeline": metadata.version("paraclip-pipeline"),
        "training_code_sha256": digest.hexdigest(),
        "torch": torch.__version__,
        "open_clip": open_clip.__version__,
    }


def state_root_for(output_dir: Path) -> Path:
    return output_dir.with_name(f"{output_dir.name}.train-state")


# What an unfinished run leaves beside its checkpoint name: its resumable state and
# its prepared data (``training.prepare``).
UNFINISHED_SUFFIXES = (".train-state", ".train-data")


def adopt_unfinished(checkpoints_dir: Path, parent_run_id: str | None, run_id: str) -> list[Path]:
    """Rename a failed or killed parent run's training state and prepared data to this
    run's names, so a re-execution resumes where the parent stopped.

    Dagster gives a re-execution a new run id, and the checkpoint directory is named by the
    run id: without this the rerun started from step 0 beside the parent's orphaned state.
    The state still has to match the run's fingerprint (same data, profile and config)
    to be used; a parent that finished has no state left, so nothing moves. Returns the
    new paths.
    """
    if not parent_run_id or parent_run_id == run_id:
        return []
    adopted = []
    for suffix in UNFINISHED_SUFFIXES:
        # ``<parent>`` for the first seed, ``<parent>-seed<N>`` for the others.
        for source in sorted(checkpoints_dir.glob(f"{parent_run_id}*{suffix}")):
            target = checkpoints_dir / (run_id + source.name[len(parent_run_id) :])
            if source.is_dir() and not target.exists():
                os.replace(source, target)
                adopted.append(target)
    return adopted


@contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield an empty temporary directory beside ``target``; rename it onto ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield staging
        if target.exists():
            raise CheckpointError(f"{target} already exists; refusing to overwrite it")
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


_CAPTION_IDS_SCHEMA = pa.schema([pa.field(schema.CAPTION_ID, pa.string())])


def write_checkpoint(
    output_dir: Path,
    *,
    model: torch.nn.Module,
    tokenizer: Any,
    profile: ModelProfile,
    model_config: dict[str, Any],
    manifest_fields: dict[str, Any],
    trained_caption_ids: Path,
) -> dict[str, Any]:
    """Write the final checkpoint directory atomically; returns its manifest.

    ``trained_caption_ids`` is a Parquet file with a caption_id column, one row per trained
    row (the prepared train file): copied batch by batch, never held."""
    output_dir = Path(output_dir).resolve()
    is_hf_text = "hf_model_name" in model_config["text_cfg"]
    with atomic_directory(output_dir) as staging:
        save_file(cpu_state(model.state_dict()), staging / WEIGHTS_FILE)
        if is_hf_text:
            export_text_tower(model, tokenizer, staging / HF_EXPORT_DIR)
            tokenizer.tokenizer.save_pretrained(staging)
            # Relative to the checkpoint, so a moved or copied checkpoint keeps loading: the
            # project loads through its manifest's profile; plain open_clip "local-dir:"
            # takes its tokenizer from the checkpoint and, run from the checkpoint
            # directory, the HF config from this path (no absolute path is recorded).
            model_config = {
                **model_config,
                "text_cfg": {
                    **model_config["text_cfg"],
                    "hf_model_name": HF_EXPORT_DIR,
                    "hf_tokenizer_name": HF_EXPORT_DIR,
                },
            }
        open_clip_config = {
            "model_cfg": model_config,
            "preprocess_cfg": dict(model.visual.preprocess_cfg),
        }
        write_text_atomic(json.dumps(open_clip_config, indent=2), staging / OPEN_CLIP_CONFIG_FILE)
        trained_count = 0
        with parquet_stream(staging / CAPTION_IDS_FILE, _CAPTION_IDS_SCHEMA) as ids:
            source = pq.ParquetFile(trained_caption_ids)
            for batch in row_group_batches(source, 1 << 16, [schema.CAPTION_ID]):
                ids.write(batch)
                trained_count += len(batch)
        manifest = {
            "format": CHECKPOINT_FORMAT,
            **manifest_fields,
            "profile": profile.to_dict(),
            "code_version": code_version(),
            "weights_file": WEIGHTS_FILE,
            "weights_sha256": sha256_file(staging / WEIGHTS_FILE),
            "trained_caption_ids_file": CAPTION_IDS_FILE,
            "trained_caption_ids_sha256": sha256_file(staging / CAPTION_IDS_FILE),
            "trained_caption_count": trained_count,
            "hf_text_export": HF_EXPORT_DIR if is_hf_text else None,
        }
        write_text_atomic(json.dumps(manifest, indent=2, default=str), staging / MANIFEST_FILE)
    return manifest


def save_training_state(
    state_root: Path,
    *,
    step: int,
    trainable: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    meta: dict[str, Any],
) -> Path:
    """Write ``step-NNNNNNNN`` atomically, then drop older states (the newest is enough)."""
    target = state_root / f"step-{step:08d}"
    with atomic_directory(target) as staging:
        save_file(cpu_state(trainable), staging / STATE_WEIGHTS_FILE)
        torch.save(
            {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
            },
            staging / STATE_TORCH_FILE,
        )
        write_text_atomic(json.dumps({**meta, "step": step}), staging / STATE_META_FILE)
    for older in state_root.glob("step-*"):
        if older != target:
            shutil.rmtree(older, ignore_errors=True)
    return target


def load_latest_training_state(state_root: Path) -> dict[str, Any] | None:
    """The newest complete training state, or None when there is none."""
    candidates = sorted(state_root.glob("step-*")) if state_root.is_dir() else []
    if not candidates:
        return None
    latest = candidates[-1]
    try:
        meta = json.loads((latest / STATE_META_FILE).read_text(encoding="utf-8"))
        trainable = load_file(latest / STATE_WEIGHTS_FILE)
        torch_state = torch.load(latest / STATE_TORCH_FILE, map_location="cpu", weights_only=True)
    except (OSError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"training state {latest} cannot be read: {error}") from error
    return {**torch_state, "meta": meta, "trainable": trainable, "path": latest}


def remove_training_state(state_root: Path) -> None:
    shutil.rmtree(state_root, ignore_errors=True)
