"""image_embeddings (frozen tower, once per shard) and text_encoder_checkpoint (all shards)."""

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from paraclip_pipeline import schema
from paraclip_pipeline.asset_names import FILTERED_PAIRS, IMAGE_EMBEDDINGS
from paraclip_pipeline.defs import conditions
from paraclip_pipeline.defs.eligibility import (
    EXCLUDED_COLUMNS,
    excluded_summary,
    inputs_fingerprint,
    select_trainable,
)
from paraclip_pipeline.defs.metadata import records_table, report_unusable_images
from paraclip_pipeline.defs.partitions import ALL_SHARDS, caption_shards
from paraclip_pipeline.defs.progress import heartbeat
from paraclip_pipeline.defs.resources import ClipModelResource, StorageResource, TrainingResource
from paraclip_pipeline.lineage.manifest import ShardRows, shard_inputs
from paraclip_pipeline.storage import table_fingerprint

if TYPE_CHECKING:  # torch-heavy modules load when a run first needs them
    from paraclip_pipeline.modeling.profiles import ModelProfile
    from paraclip_pipeline.retention import PruneResult
    from paraclip_pipeline.training.config import TrainConfig
    from paraclip_pipeline.training.loop import TrainResult

MODEL_GROUP = "model"
# Why image_embeddings could not use a row's image (paths dropped at ingestion are
# counted by raw_captions).
IMAGE_UNREADABLE = "unreadable"
INPUTS_FINGERPRINT = "inputs_fingerprint"


@dg.asset(
    partitions_def=caption_shards,
    group_name=MODEL_GROUP,
    code_version="image-embeddings-v1",
    kinds={"pytorch", "parquet"},
    automation_condition=conditions.per_shard(),
)
def image_embeddings(
    context: dg.AssetExecutionContext, raw_captions: pa.Table, clip_model: ClipModelResource
) -> dg.Output[pa.Table]:
    """Frozen image-tower embeddings, computed once per shard and reused by every training run.

    Shards that carry precomputed embeddings (as LAION distributes them) skip the tower.
    Image files that cannot be read are counted in ``unusable_images`` and logged once as
    a warning event.
    """
    from paraclip_pipeline.modeling.image_embeddings import (
        compute_image_embeddings,
        image_embedding_stats,
    )

    with heartbeat(context.log.info, f"image embeddings of shard {context.partition_key}"):
        clip = clip_model.load()
        table = compute_image_embeddings(raw_captions, clip)
    stats = image_embedding_stats(table)
    return dg.Output(
        table,
        data_version=dg.DataVersion(table_fingerprint(table)),
        metadata={
            "rows": len(table),
            "rows_with_image": int(pc.sum(table[schema.HAS_IMAGE]).as_py() or 0),
            "precomputed": stats.precomputed,
            "computed": stats.computed,
            **report_unusable_images(
                context,
                {IMAGE_UNREADABLE: stats.unreadable_images},
                [f"caption_id {cid}: {why}" for cid, why in stats.unreadable.items()],
            ),
            "model_id": clip.model_id,
            "profile": clip_model.profile,
        },
    )


def _shard_inputs(
    instance: dg.DagsterInstance, pairs_by_shard: dict[str, pa.Table]
) -> list[dict[str, object]]:
    counts = {
        shard: ShardRows(
            rows=len(table),
            train_rows=int(pc.sum(pc.equal(table[schema.SPLIT], "train")).as_py() or 0),
        )
        for shard, table in pairs_by_shard.items()
    }
    return shard_inputs(instance, counts)


def _loss_plot_markdown(loss_history: list[dict[str, float]]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.2), dpi=100)
    steps = [row["step"] for row in loss_history]
    for term, label in (
        ("l1", "L1 image-T''"),
        ("l2", "L2 T-T'"),
        ("l3", "L3 T'-T''"),
        ("total", "total"),
    ):
        axis.plot(steps, [row[term] for row in loss_history], label=label)
    axis.set_xlabel("step")
    axis.set_ylabel("InfoNCE loss")
    axis.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return f"![loss curves](data:image/png;base64,{encoded})"


@dg.asset(
    group_name=MODEL_GROUP,
    code_version="checkpoint-v1",
    kinds={"pytorch", "safetensors"},
    ins={FILTERED_PAIRS: ALL_SHARDS, IMAGE_EMBEDDINGS: ALL_SHARDS},
    automation_condition=conditions.all_shards(),
    # No new materialization when the trainable inputs equal the last checkpoint's.
    output_required=False,
)
def text_encoder_checkpoint(
    context: dg.AssetExecutionContext,
    filtered_pairs: dict[str, pa.Table],
    image_embeddings: dict[str, pa.Table],
    clip_model: ClipModelResource,
    training: TrainingResource,
    storage: StorageResource,
) -> Iterator[dg.MaterializeResult]:
    """Text tower fine-tuned with the three ParaCLIP losses; the image tower stays frozen.

    Trains only on shards whose latest filtered_pairs passed its blocking checks with the
    loaded rules; the rest are listed with their reason under ``excluded`` in the manifest.
    """
    from paraclip_pipeline.modeling.profiles import get_profile
    from paraclip_pipeline.training.loop import train_text_encoder

    filtered_pairs, excluded = select_trainable(context, filtered_pairs)
    if not filtered_pairs:
        raise dg.Failure(
            "no shard may train: "
            + (excluded_summary(excluded) if excluded else "no filtered_pairs partition yet")
        )
    inputs = _shard_inputs(context.instance, filtered_pairs)
    config = training.config()
    fingerprint = inputs_fingerprint(inputs, config.model_dump(mode="json"), clip_model.profile)
    previous = _previous_checkpoint(context.instance)
    if previous and previous[0] == fingerprint and previous[1].exists():
        context.log.info(
            f"training inputs unchanged since checkpoint {previous[1]}: nothing to retrain"
        )
        return
    pairs = pa.concat_tables(filtered_pairs[shard] for shard in sorted(filtered_pairs))
    embeddings = pa.concat_tables(
        image_embeddings[shard] for shard in sorted(image_embeddings) if shard in filtered_pairs
    )
    output_dir = storage.layout.checkpoints_dir / context.run_id
    profile = get_profile(clip_model.profile)
    with heartbeat(context.log.info, "training") as progress:
        if config.nproc > 1:
            result = _train_with_torchrun(
                context, pairs, embeddings, profile, config, output_dir, inputs, excluded
            )
        else:
            result = train_text_encoder(
                pairs,
                embeddings,
                profile=profile,
                config=config,
                output_dir=output_dir,
                inputs=inputs,
                excluded=excluded,
                log=progress,
            )
    from paraclip_pipeline.retention import prune_checkpoints

    pruned = prune_checkpoints(storage.layout, storage.keep_checkpoints)
    context.log.info(f"checkpoint retention: {pruned.summary()}")
    yield _checkpoint_result(result, inputs, excluded, fingerprint, pruned)


def _previous_checkpoint(instance: dg.DagsterInstance) -> tuple[str, Path] | None:
    """Inputs fingerprint and directory of the latest checkpoint, if it recorded them."""
    event = instance.get_latest_materialization_event(text_encoder_checkpoint.key)
    materialization = event.asset_materialization if event else None
    if materialization is None:
        return None
    metadata = materialization.metadata
    if INPUTS_FINGERPRINT not in metadata or "checkpoint_dir" not in metadata:
        return None
    return str(metadata[INPUTS_FINGERPRINT].value), Path(str(metadata["checkpoint_dir"].value))


def _checkpoint_result(
    result: "TrainResult",
    inputs: list[dict[str, object]],
    excluded: list[dict[str, str]],
    fingerprint: str,
    pruned: "PruneResult",
) -> dg.MaterializeResult:
    manifest, metrics, loss_history = result.manifest, result.metrics, result.loss_history
    return dg.MaterializeResult(
        metadata={
            "checkpoint_dir": dg.MetadataValue.path(str(result.checkpoint_dir)),
            INPUTS_FINGERPRINT: fingerprint,
            "excluded_shards": records_table(excluded, EXCLUDED_COLUMNS),
            # Retention after this checkpoint: what was deleted and how much it freed.
            "checkpoints_removed": len(pruned.removed),
            "freed_mb": round(pruned.freed_bytes / 1e6, 1),
            "weights_sha256": manifest.get("weights_sha256", ""),
            "shards": len(inputs),
            "train_rows": sum(int(item["train_rows"]) for item in inputs),  # type: ignore[call-overload]
            **{key: float(value) for key, value in metrics.items()},
            "loss_curves": dg.MetadataValue.md(_loss_plot_markdown(loss_history))
            if loss_history
            else "no steps",
            "lineage": records_table(
                inputs,
                [
                    "partition",
                    "rows",
                    "train_rows",
                    "filtered_pairs_data_version",
                    "filtered_pairs_storage_id",
                    "upstream_newer_than_pairs",
                ],
            ),
            "manifest": dg.MetadataValue.json(json.loads(json.dumps(manifest, default=str))),
        },
        data_version=dg.DataVersion(manifest.get("weights_sha256", "")),
    )


def _train_with_torchrun(
    context: dg.AssetExecutionContext,
    pairs: pa.Table,
    embeddings: pa.Table,
    profile: "ModelProfile",
    config: "TrainConfig",
    output_dir: Path,
    inputs: list[dict[str, object]],
    excluded: list[dict[str, str]],
) -> "TrainResult":
    """Launch ``torchrun --nproc_per_node=N`` through Dagster Pipes; rank 0 reports back."""
    from paraclip_pipeline.training.distributed import build_torchrun_command, write_job

    job_path = write_job(
        pairs,
        embeddings,
        profile=profile,
        config=config,
        output_dir=output_dir,
        inputs=inputs,
        excluded=excluded,
    )
    client = dg.PipesSubprocessClient()
    client.run(command=build_torchrun_command(job_path, config.nproc), context=context)
    from paraclip_pipeline.training.loop import TrainResult

    return TrainResult.from_checkpoint_dir(output_dir)
