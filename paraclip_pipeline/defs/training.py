"""image_embeddings (frozen tower, once per shard) and text_encoder_checkpoint (all shards)."""

import base64
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from paraclip_pipeline import schema
from paraclip_pipeline.asset_names import FILTERED_PAIRS, IMAGE_EMBEDDINGS
from paraclip_pipeline.defs.metadata import records_table, report_unusable_images
from paraclip_pipeline.defs.partitions import ALL_SHARDS, caption_shards
from paraclip_pipeline.defs.resources import (
    ClipModelResource,
    RayResource,
    StorageResource,
    TrainingResource,
)
from paraclip_pipeline.distributed import ENGINE_IN_PROCESS
from paraclip_pipeline.lineage.manifest import ShardRows, shard_inputs
from paraclip_pipeline.storage import ParquetTable, table_fingerprint

if TYPE_CHECKING:  # torch-heavy modules load when a run first needs them
    from paraclip_pipeline.modeling.profiles import ModelProfile
    from paraclip_pipeline.training.config import TrainConfig
    from paraclip_pipeline.training.loop import TrainResult

MODEL_GROUP = "model"
CHECKPOINT_DIR_KEY = "checkpoint_dir"
# Metadata of a several-seed run: [{seed, checkpoint_dir, ...}], the primary checkpoint first.
SEED_CHECKPOINTS_KEY = "seed_checkpoints"
SEED_KEY = "seed"
# Why image_embeddings could not use a row's image (paths dropped at ingestion are
# counted by raw_captions).
IMAGE_UNREADABLE = "unreadable"
IMAGE_EMBEDDING_INPUTS = [
    schema.CAPTION_ID,
    schema.IMAGE_PATH,
    schema.IMAGE_EMBEDDING,
    schema.IMAGE_EMBEDDING_MODEL,
]


@dg.asset(
    partitions_def=caption_shards,
    group_name=MODEL_GROUP,
    code_version="image-embeddings-v1",
    kinds={"pytorch", "parquet"},
    automation_condition=dg.AutomationCondition.eager(),
)
def image_embeddings(
    context: dg.AssetExecutionContext, raw_captions: ParquetTable, clip_model: ClipModelResource
) -> dg.Output[pa.Table]:
    """Frozen image-tower embeddings, computed once per shard and reused by every training run.

    Reads only the four columns it needs from raw_captions (not the captions, URLs...).
    The output is still one table: training gathers every shard's embeddings anyway, and
    both move to streams together (issue 14, streaming training).

    Shards that carry precomputed embeddings (as LAION distributes them) skip the tower.
    Image files that cannot be read are counted in ``unusable_images`` and logged once as
    a warning event.
    """
    from paraclip_pipeline.modeling.image_embeddings import (
        compute_image_embeddings,
        image_embedding_stats,
    )

    clip = clip_model.load()
    table = compute_image_embeddings(raw_captions.read(IMAGE_EMBEDDING_INPUTS), clip)
    stats = image_embedding_stats(table)
    return dg.Output(
        table,
        data_version=dg.DataVersion(table_fingerprint(table)),
        metadata={
            "engine": ENGINE_IN_PROCESS,
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
            train_rows=int(pc.sum(pc.equal(table[schema.SPLIT], schema.TRAIN)).as_py() or 0),
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
    automation_condition=dg.AutomationCondition.eager(),
)
def text_encoder_checkpoint(
    context: dg.AssetExecutionContext,
    filtered_pairs: dict[str, pa.Table],
    image_embeddings: dict[str, pa.Table],
    clip_model: ClipModelResource,
    training: TrainingResource,
    storage: StorageResource,
    ray: RayResource,
) -> dg.MaterializeResult:
    """Text tower fine-tuned with the three ParaCLIP losses; the image tower stays frozen.

    ``training.nproc`` ranks: 1 trains here, N > 1 with torchrun here, or, with Ray
    configured, on N Ray Train workers (same loop, same checkpoint). With ``seeds`` in the
    training config, one checkpoint per seed, one after the other; the metadata's
    ``checkpoint_dir`` is the first seed's and ``seed_checkpoints`` lists them all."""
    from paraclip_pipeline.modeling.profiles import get_profile
    from paraclip_pipeline.training.loop import train_text_encoder

    if not filtered_pairs:
        raise dg.Failure("no filtered_pairs partition is materialized: nothing to train on")
    inputs = _shard_inputs(context.instance, filtered_pairs)
    pairs = pa.concat_tables(filtered_pairs[shard] for shard in sorted(filtered_pairs))
    embeddings = pa.concat_tables(
        image_embeddings[shard] for shard in sorted(image_embeddings) if shard in filtered_pairs
    )
    config = training.config()
    profile = get_profile(clip_model.profile)
    results = []
    for index, seed in enumerate(config.run_seeds):
        output_dir = seed_checkpoint_dir(
            storage.layout.checkpoints_dir, context.run_id, seed, index
        )
        if len(config.run_seeds) > 1:
            context.log.info(f"seed {seed} ({index + 1}/{len(config.run_seeds)}): {output_dir}")
        seed_config = config.for_seed(seed)
        if ray.enabled:
            result = _train_with_ray(
                context, pairs, embeddings, profile, seed_config, output_dir, inputs, ray
            )
        elif config.nproc > 1:
            result = _train_with_torchrun(
                context, pairs, embeddings, profile, seed_config, output_dir, inputs
            )
        else:
            result = train_text_encoder(
                pairs,
                embeddings,
                profile=profile,
                config=seed_config,
                output_dir=output_dir,
                inputs=inputs,
                log=context.log.info,
            )
        results.append(result)
    primary = results[0]
    return _checkpoint_result(
        primary.checkpoint_dir,
        primary.manifest,
        primary.metrics,
        primary.loss_history,
        inputs,
        ray.engine,
        seed_checkpoints(config.run_seeds, results) if len(results) > 1 else None,
    )


def seed_checkpoint_dir(checkpoints_dir: Path, run_id: str, seed: int, index: int) -> Path:
    """``<run_id>/`` for the first (primary) seed, as a single-seed run writes it, so the run
    id still names the checkpoint; ``<run_id>-seed<N>/`` beside it for the others."""
    return checkpoints_dir / (run_id if index == 0 else f"{run_id}-seed{seed}")


def seed_checkpoints(seeds: tuple[int, ...], results: list["TrainResult"]) -> list[dict]:
    """One entry per seed, primary first: what ``benchmark_report`` scores and averages."""
    return [
        {
            SEED_KEY: seed,
            CHECKPOINT_DIR_KEY: str(result.checkpoint_dir),
            "weights_sha256": result.manifest.get("weights_sha256", ""),
            "loss_total": result.metrics.get("loss_total"),
        }
        for seed, result in zip(seeds, results, strict=True)
    ]


def _checkpoint_result(
    checkpoint_dir: Path,
    manifest: dict,
    metrics: dict[str, float],
    loss_history: list[dict[str, float]],
    inputs: list[dict[str, object]],
    engine: str,
    seeds: list[dict] | None = None,
) -> dg.MaterializeResult:
    several = {SEED_CHECKPOINTS_KEY: dg.MetadataValue.json(seeds)} if seeds else {}
    return dg.MaterializeResult(
        metadata={
            "engine": engine,
            CHECKPOINT_DIR_KEY: dg.MetadataValue.path(str(checkpoint_dir)),
            **several,
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
) -> "TrainResult":
    """Launch ``torchrun --nproc_per_node=N`` through Dagster Pipes; rank 0 reports back."""
    from paraclip_pipeline.training.distributed import build_torchrun_command, write_job

    job_path = write_job(
        pairs, embeddings, profile=profile, config=config, output_dir=output_dir, inputs=inputs
    )
    client = dg.PipesSubprocessClient()
    client.run(command=build_torchrun_command(job_path, config.nproc), context=context)
    from paraclip_pipeline.training.loop import TrainResult

    return TrainResult.from_checkpoint_dir(output_dir)


def _train_with_ray(
    context: dg.AssetExecutionContext,
    pairs: pa.Table,
    embeddings: pa.Table,
    profile: "ModelProfile",
    config: "TrainConfig",
    output_dir: Path,
    inputs: list[dict[str, object]],
    ray: RayResource,
) -> "TrainResult":
    """``config.nproc`` Ray Train workers on the configured cluster; rank 0 writes the checkpoint
    to the storage root, which every node must see (shared storage)."""
    from paraclip_pipeline.distributed.ray_train import RayTrainSpec, train_on_ray
    from paraclip_pipeline.training.distributed import write_job
    from paraclip_pipeline.training.loop import TrainResult

    job_path = write_job(
        pairs, embeddings, profile=profile, config=config, output_dir=output_dir, inputs=inputs
    )
    assert ray.address is not None
    spec = RayTrainSpec(
        address=ray.address,
        num_workers=config.nproc,
        cpus_per_worker=ray.cpus_per_task,
        gpus_per_worker=ray.gpus_per_task,
        max_failures=ray.max_failures,
    )
    context.log.info(f"training on Ray at {ray.address}: {spec.num_workers} Ray Train worker(s)")
    train_on_ray(job_path, spec)
    return TrainResult.from_checkpoint_dir(output_dir)
