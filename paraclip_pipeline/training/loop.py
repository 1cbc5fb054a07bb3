"""ParaCLIP fine-tuning of the text tower on cached image embeddings: the loop.

Only the text tower (and the logit scale, unless the temperature is fixed) is in the
optimizer (``optim``). The image tower is frozen and never run: L1 uses the image
embeddings computed once per shard. The data is prepared on disk (``prepare``) and
streamed (``stream``): the order of every epoch is a pure function of ``(seed, epoch,
shuffle_buffer)`` and the global batch is split across ranks in rank order, so a run
resumed from a saved state (which records its position in the stream), or run on N
processes, sees exactly the same batches.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from paraclip_pipeline.modeling.checkpoint_format import (
    CheckpointError,
    read_trained_caption_ids,
    verify_checkpoint,
)
from paraclip_pipeline.modeling.factory import (
    load_clip,
    resolved_model_config,
)
from paraclip_pipeline.modeling.profiles import ModelProfile
from paraclip_pipeline.training.checkpoint import (
    load_latest_training_state,
    remove_training_state,
    save_training_state,
    state_root_for,
    write_checkpoint,
)
from paraclip_pipeline.training.config import TrainConfig
from paraclip_pipeline.training.data import check_image_embeddings, micro_batch_size
from paraclip_pipeline.training.loss_plan import plan_losses
from paraclip_pipeline.training.losses import LossTerms, ParaClipLoss
from paraclip_pipeline.training.optim import freeze_image_tower, make_optimizer, make_scheduler
from paraclip_pipeline.training.prepare import Source, prepare_training_data
from paraclip_pipeline.training.prepared import PreparedData, prepared_dir_for
from paraclip_pipeline.training.step import TextFeatures, forward_backward, mean_terms, seed_step
from paraclip_pipeline.training.stream import micro_batches

LogFn = Callable[[str], None]
# open_clip clamps the learned logit scale at 100 (log 100) for stability.
MAX_LOG_LOGIT_SCALE = math.log(100.0)
# Config fields that change neither the result nor its meaning (excluded from the fingerprint).
# ``selection`` documents the run, it does not change it.
_FINGERPRINT_EXCLUDED = {
    "nproc",
    "device",
    "log_every_steps",
    "checkpoint_every_steps",
    "selection",
    "loader_workers",
}


@dataclass
class TrainResult:
    checkpoint_dir: Path
    manifest: dict[str, Any]
    metrics: dict[str, float]
    loss_history: list[dict[str, float]]

    @property
    def trained_caption_ids(self) -> list[str]:
        """The trained rows' caption_ids, read from the checkpoint when asked for."""
        return read_trained_caption_ids(self.checkpoint_dir, self.manifest).to_pylist()

    @classmethod
    def from_checkpoint_dir(cls, checkpoint_dir: Path) -> TrainResult:
        """Read back a finished (sha256-verified) checkpoint, e.g. after torchrun."""
        checkpoint_dir = Path(checkpoint_dir)
        manifest = verify_checkpoint(checkpoint_dir)
        return cls(
            checkpoint_dir=checkpoint_dir,
            manifest=manifest,
            metrics=manifest["metrics"],
            loss_history=manifest["loss_history"],
        )


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()


def run_fingerprint(profile: ModelProfile, config: TrainConfig, data: PreparedData) -> str:
    """Identity of a run: same fingerprint, same weights (checkpoints and states are reused)."""
    decisive = config.model_dump(exclude=_FINGERPRINT_EXCLUDED)
    if decisive["seeds"] is None:  # a single-seed run keeps the fingerprint it always had
        del decisive["seeds"]
    payload = json.dumps({"profile": profile.to_dict(), "config": decisive}, sort_keys=True)
    return hashlib.sha256(f"{payload}|{data.fingerprint}".encode()).hexdigest()


def _peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_training(
    data: PreparedData,
    *,
    profile: ModelProfile,
    config: TrainConfig,
    output_dir: Path,
    inputs: list[dict[str, Any]],
    excluded: list[dict[str, str]] | None = None,
    resume: bool = True,
    log: LogFn | None = None,
    context: DistContext | None = None,
) -> TrainResult | None:
    """Train on one rank; rank 0 writes the checkpoint and returns the result (others None)."""
    context = context or DistContext(device=config.device)
    log = log if log is not None and context.is_main else (lambda _message: None)
    output_dir = Path(output_dir).resolve()
    fingerprint = run_fingerprint(profile, config, data)
    if output_dir.exists():
        existing = TrainResult.from_checkpoint_dir(output_dir)
        if existing.manifest.get("run_fingerprint") != fingerprint:
            raise CheckpointError(
                f"{output_dir} holds a checkpoint of a different run (other data, profile or "
                "config); choose another output_dir"
            )
        log(f"checkpoint {output_dir} of this exact run already exists; reusing it")
        return existing if context.is_main else None

    clip = load_clip(profile, device=context.device)
    check_image_embeddings(data, clip)
    model = clip.model
    freeze_image_tower(model, config)
    trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
    optimizer = make_optimizer(model, config)
    rows = len(data)
    micro = micro_batch_size(rows, config, context.world_size)
    steps_per_epoch = rows // (micro * config.grad_accum_steps)
    per_epoch = steps_per_epoch * config.grad_accum_steps  # micro-batches
    total_steps = config.epochs * steps_per_epoch
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    scheduler = make_scheduler(optimizer, total_steps, config)

    state_root = state_root_for(output_dir)
    state = load_latest_training_state(state_root) if resume else None
    if not resume and context.is_main:
        remove_training_state(state_root)
    start_step, position, loss_history = 0, 0, []
    if state is not None:
        if state["meta"].get("run_fingerprint") != fingerprint:
            raise CheckpointError(
                f"training state {state['path']} belongs to a different run; delete "
                f"{state_root} or call with resume=False"
            )
        model.load_state_dict(state["trainable"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_step, loss_history = state["meta"]["step"], state["meta"]["loss_history"]
        epoch, batch_index = state["meta"]["stream_position"]
        position = epoch * per_epoch + batch_index
        log(
            f"resuming from {state['path']} at step {start_step}/{total_steps} "
            f"(epoch {epoch}, micro-batch {batch_index})"
        )
    batches = micro_batches(
        data,
        clip.tokenizer,
        workers=config.loader_workers,
        per_epoch=per_epoch,
        start=position,
        stop=total_steps * config.grad_accum_steps,
        micro=micro,
        rank=context.rank,
        world_size=context.world_size,
        seed=config.seed,
        shuffle_buffer=config.shuffle_buffer,
    )
    step_module: torch.nn.Module = TextFeatures(model)
    if context.world_size > 1:
        device_ids = (
            [torch.device(context.device).index] if context.device.startswith("cuda") else None
        )
        step_module = DistributedDataParallel(step_module, device_ids=device_ids)
    losses = plan_losses(
        config.loss_weights,
        pretrained_image_tower=profile.pretrained is not None,
        own_image_model_id=clip.model_id,
        image_embedding_models=data.image_embedding_models,
        rows_with_image=data.rows_with_image,
    )
    log("losses: " + ", ".join(f"{term} {why}" for term, why in losses.reasons.items()))
    loss_fn = ParaClipLoss(losses.weights, config.fixed_temperature, context.world_size)
    log(
        f"dropped {data.duplicate_captions_dropped} train rows whose normalised caption a "
        "smaller caption_id (in any shard) already had"
    )
    log(
        f"training {rows} rows ({data.rows_with_image} with image), batch {micro} x "
        f"{config.grad_accum_steps} accumulation, {total_steps} steps on {context.world_size} "
        f"process(es)"
    )

    started = time.perf_counter()
    data_wait = 0.0
    for step in range(start_step, total_steps):
        seed_step(config.seed, step, context.rank)
        step_terms: list[LossTerms] = []
        for micro_index in range(config.grad_accum_steps):
            waited = time.perf_counter()
            batch = next(batches)
            data_wait += time.perf_counter() - waited
            last_micro = micro_index == config.grad_accum_steps - 1
            no_sync = getattr(step_module, "no_sync", None)
            sync = contextlib.nullcontext() if last_micro or no_sync is None else no_sync()
            with sync:
                terms = forward_backward(
                    step_module,
                    loss_fn,
                    batch.tokens.long().to(context.device),
                    batch.images.to(context.device),
                    batch.has_image.to(context.device),
                    bf16=config.bf16,
                    loss_divisor=config.grad_accum_steps,
                )
            step_terms.append(terms)
        if config.grad_clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(list(trainable.values()), config.grad_clip_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            model.logit_scale.clamp_(0, MAX_LOG_LOGIT_SCALE)
        loss_history.append({"step": step + 1, **mean_terms(step_terms)})
        done = step + 1
        if done % config.checkpoint_every_steps == 0 and done < total_steps:
            if context.is_main:
                save_training_state(
                    state_root,
                    step=done,
                    trainable=trainable,
                    optimizer=optimizer,
                    scheduler=scheduler,
                    meta={
                        "run_fingerprint": fingerprint,
                        "loss_history": loss_history,
                        # The position in the stream: resuming starts reading there.
                        "stream_position": divmod(done * config.grad_accum_steps, per_epoch),
                    },
                )
            context.barrier()
        if done % config.log_every_steps == 0 or done == total_steps:
            latest = loss_history[-1]
            log(
                f"step {done}/{total_steps} loss {latest['total']:.4f} (L1 {latest['l1']:.4f} "
                f"L2 {latest['l2']:.4f} L3 {latest['l3']:.4f}) lr {scheduler.get_last_lr()[0]:.2e}"
            )
    wall = time.perf_counter() - started

    steps_run = total_steps - start_step
    final = loss_history[-1] if loss_history else {}
    metrics = {
        **{f"loss_{key}": float(final[key]) for key in ("l1", "l2", "l3", "total") if key in final},
        "steps": float(total_steps),
        "steps_this_session": float(steps_run),
        "steps_per_s": steps_run / wall if wall > 0 else 0.0,
        "samples_per_s": steps_run * micro * config.grad_accum_steps / wall if wall > 0 else 0.0,
        "peak_memory_mb": _peak_memory_mb(context.device),
        "wall_s": wall,
        # Time the loop waited for the next micro-batch, and its share of the wall time.
        "data_wait_s": data_wait,
        "data_wait_share": data_wait / wall if wall > 0 else 0.0,
        "micro_batch_size": float(micro),
        "world_size": float(context.world_size),
        "train_rows": float(rows),
        "train_rows_with_image": float(data.rows_with_image),
        "logit_scale": float(model.logit_scale.detach().exp()),
    }
    result = None
    if context.is_main:
        manifest = write_checkpoint(
            output_dir,
            model=model,
            tokenizer=clip.tokenizer,
            profile=profile,
            model_config=resolved_model_config(profile),
            manifest_fields={
                "run_fingerprint": fingerprint,
                "config": config.model_dump(mode="json"),
                "selection": None
                if config.selection is None
                else config.selection.model_dump(mode="json"),
                "inputs": inputs,
                # Shards left out (quarantined, failed checks, stale rules) and why.
                "excluded": excluded or [],
                "metrics": metrics,
                "loss_history": loss_history,
                "image_model_id": clip.model_id,
                "image_embedding_models": sorted(data.image_embedding_models),
                "pairs_without_embedding_row": data.rows_without_embedding_row,
                "duplicate_captions_dropped": data.duplicate_captions_dropped,
                "losses": losses.reasons,
            },
            trained_caption_ids=data.train_path,
        )
        remove_training_state(state_root)
        log(
            f"checkpoint written to {output_dir} (weights sha256 {manifest['weights_sha256'][:12]})"
        )
        result = TrainResult(output_dir, manifest, metrics, loss_history)
    context.barrier()
    return result


def train_text_encoder(
    pairs: Source,
    image_embeddings: Source,
    *,
    profile: ModelProfile,
    config: TrainConfig,
    output_dir: Path,
    inputs: list[dict],
    excluded: list[dict[str, str]] | None = None,
    resume: bool = True,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Prepare the data beside ``output_dir``, fine-tune the profile's text tower in this
    process (``config.nproc`` is not used here), then remove the prepared data."""
    data = prepare_training_data(pairs, image_embeddings, prepared_dir_for(output_dir))
    result = run_training(
        data,
        profile=profile,
        config=config,
        output_dir=output_dir,
        inputs=inputs,
        excluded=excluded,
        resume=resume,
        log=log,
        context=DistContext(device=config.device),
    )
    assert result is not None  # rank 0 always returns its result
    data.remove()
    return result
