"""image_embeddings (frozen tower, once per shard) and text_encoder_checkpoint (all shards)."""

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
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
from paraclip_pipeline.defs.resources import (
    ClipModelResource,
    RayResource,
    StorageResource,
    TrainingResource,
)
from paraclip_pipeline.distributed import ENGINE_IN_PROCESS
from paraclip_pipeline.lineage.manifest import ShardRows, shard_inputs
from paraclip_pipeline.lineage.pending import MANIFEST_KEY
from paraclip_pipeline.storage import ParquetTable

if TYPE_CHECKING:  # torch-heavy modules load when a run first needs them
    from paraclip_pipeline.retention import PruneResult
    from paraclip_pipeline.training.loop import TrainResult

MODEL_GROUP = "model"
CHECKPOINT_DIR_KEY = "checkpoint_dir"
# Metadata of a several-seed run: [{seed, checkpoint_dir, ...}], the primary checkpoint first.
SEED_CHECKPOINTS_KEY = "seed_checkpoints"
SEED_KEY = "seed"
# Why image_embeddings could not use a row's image (paths dropped at ingestion are
# counted by raw_captions).
IMAGE_UNREADABLE = "unreadable"
INPUTS_FINGERPRINT = "inputs_fingerprint"
COUNT_BATCH_ROWS = 1 << 16


@dg.asset(
    partitions_def=caption_shards,
    group_name=MODEL_GROUP,
    code_version="image-embeddings-v1",
    kinds={"pytorch", "parquet"},
    automation_condition=conditions.per_shard(),
)
def image_embeddings(
    context: dg.AssetExecutionContext,
    raw_captions: ParquetTable,
    clip_model: ClipModelResource,
    storage: StorageResource,
) -> dg.Output[ParquetTable]:
    """Frozen image-tower embeddings, computed once per shard and reused by every training run.

    Streams the four columns it needs from raw_captions (not the captions, URLs...) in
    ``storage.batch_rows`` batches and writes small row groups, so memory is set by the
    batch, and training (``training.prepare``) reads them a few MB at a time.

    Shards that carry precomputed embeddings (as LAION distributes them) skip the tower.
    Image files that cannot be read are counted in ``unusable_images`` and logged once as
    a warning event.
    """
    from paraclip_pipeline.modeling.image_embeddings import INPUT_COLUMNS, stream_image_embeddings

    target = storage.layout.partition_file(IMAGE_EMBEDDINGS, context.partition_key)
    with heartbeat(context.log.info, f"image embeddings of shard {context.partition_key}"):
        clip = clip_model.load()
        batches = raw_captions.batches(storage.batch_rows, INPUT_COLUMNS)
        data_version, stats = stream_image_embeddings(batches, clip, target)
    return dg.Output(
        ParquetTable(str(target)),
        data_version=dg.DataVersion(data_version),
        metadata={
            "engine": ENGINE_IN_PROCESS,
            "rows": stats.rows,
            "rows_with_image": stats.rows - stats.without_image,
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


def _train_rows(pairs: ParquetTable) -> int:
    """Train rows of one shard from a scan of its split column (never the whole table)."""
    batches = pairs.batches(COUNT_BATCH_ROWS, [schema.SPLIT])
    return sum(int(pc.sum(pc.equal(b.column(0), schema.TRAIN)).as_py() or 0) for b in batches)


def _shard_inputs(
    instance: dg.DagsterInstance, pairs_by_shard: dict[str, ParquetTable]
) -> list[dict[str, object]]:
    counts = {
        shard: ShardRows(rows=pairs.num_rows, train_rows=_train_rows(pairs))
        for shard, pairs in pairs_by_shard.items()
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
    # No automation condition: the retraining policy sensor (defs/retraining.py) requests it.
    # No new materialization when the trainable inputs equal the last checkpoint's.
    output_required=False,
)
def text_encoder_checkpoint(
    context: dg.AssetExecutionContext,
    filtered_pairs: dict[str, ParquetTable],
    image_embeddings: dict[str, ParquetTable],
    clip_model: ClipModelResource,
    training: TrainingResource,
    storage: StorageResource,
    ray: RayResource,
) -> Iterator[dg.MaterializeResult]:
    """Text tower fine-tuned with the three ParaCLIP losses; the image tower stays frozen.

    ``training.nproc`` ranks: 1 trains here, N > 1 with torchrun here, or, with Ray
    configured, on N Ray Train workers (same loop, same checkpoint). With ``seeds`` in the
    training config, one checkpoint per seed, one after the other; the metadata's
    ``checkpoint_dir`` is the first seed's and ``seed_checkpoints`` lists them all.

    Trains only on shards whose latest filtered_pairs passed its training-gate checks with the
    loaded rules; the rest are listed with their reason under ``excluded`` in the manifest.
    The shards arrive as file handles: training prepares them once, with bounded memory,
    beside the first checkpoint (``training.prepare``) and streams them (``training.stream``).
    """
    from paraclip_pipeline.modeling.profiles import get_profile
    from paraclip_pipeline.training.checkpoint import adopt_unfinished
    from paraclip_pipeline.training.distributed import write_job
    from paraclip_pipeline.training.loop import DistContext, TrainResult, run_training
    from paraclip_pipeline.training.prepare import prepare_training_data
    from paraclip_pipeline.training.prepared import prepared_dir_for

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
    profile = get_profile(clip_model.profile)
    # The run record, not context.run: a directly invoked asset (tests) has none.
    run = context.instance.get_run_by_id(context.run_id)
    parent_run_id = run.parent_run_id if run else None
    adopted = adopt_unfinished(storage.layout.checkpoints_dir, parent_run_id, context.run_id)
    if adopted:
        context.log.info(f"resuming the parent run's unfinished training: {adopted}")
    results = []
    with heartbeat(context.log.info, "training") as progress:
        first_dir = seed_checkpoint_dir(storage.layout.checkpoints_dir, context.run_id, 0, 0)
        data = prepare_training_data(
            [filtered_pairs[shard] for shard in sorted(filtered_pairs)],
            [
                image_embeddings[shard]
                for shard in sorted(image_embeddings)
                if shard in filtered_pairs
            ],
            prepared_dir_for(first_dir),
        )
        for index, seed in enumerate(config.run_seeds):
            output_dir = seed_checkpoint_dir(
                storage.layout.checkpoints_dir, context.run_id, seed, index
            )
            if len(config.run_seeds) > 1:
                progress(f"seed {seed} ({index + 1}/{len(config.run_seeds)}): {output_dir}")
            # What the checkpoint is trained from and where it goes, whoever trains it.
            job = {
                "profile": profile,
                "config": config.for_seed(seed),
                "output_dir": output_dir,
                "inputs": inputs,
                "excluded": excluded,
            }
            if ray.enabled or config.nproc > 1:
                job_path = write_job(data, **job)
                if ray.enabled:
                    _train_with_ray(context, job_path, config.nproc, ray)
                else:
                    _train_with_torchrun(context, job_path, config.nproc)
                result = TrainResult.from_checkpoint_dir(output_dir)
            else:
                trained = run_training(
                    data, **job, log=progress, context=DistContext(device=config.device)
                )
                assert trained is not None  # one process: rank 0
                result = trained
            results.append(result)
        data.remove()
    from paraclip_pipeline.retention import prune_checkpoints

    pruned = prune_checkpoints(
        storage.layout,
        storage.keep_checkpoints,
        protect=[result.checkpoint_dir for result in results],
    )
    context.log.info(f"checkpoint retention: {pruned.summary()}")
    yield _checkpoint_result(
        results[0],
        inputs,
        excluded,
        fingerprint,
        pruned,
        ray.engine,
        seed_checkpoints(config.run_seeds, results) if len(results) > 1 else None,
    )


def _previous_checkpoint(instance: dg.DagsterInstance) -> tuple[str, Path] | None:
    """Inputs fingerprint and directory of the latest checkpoint, if it recorded them."""
    event = instance.get_latest_materialization_event(text_encoder_checkpoint.key)
    materialization = event.asset_materialization if event else None
    if materialization is None:
        return None
    metadata = materialization.metadata
    if INPUTS_FINGERPRINT not in metadata or CHECKPOINT_DIR_KEY not in metadata:
        return None
    return str(metadata[INPUTS_FINGERPRINT].value), Path(str(metadata[CHECKPOINT_DIR_KEY].value))


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
    result: "TrainResult",
    inputs: list[dict[str, object]],
    excluded: list[dict[str, str]],
    fingerprint: str,
    pruned: "PruneResult",
    engine: str,
    seeds: list[dict] | None = None,
) -> dg.MaterializeResult:
    manifest, metrics, loss_history = result.manifest, result.metrics, result.loss_history
    several = {SEED_CHECKPOINTS_KEY: dg.MetadataValue.json(seeds)} if seeds else {}
    return dg.MaterializeResult(
        metadata={
            "engine": engine,
            CHECKPOINT_DIR_KEY: dg.MetadataValue.path(str(result.checkpoint_dir)),
            **several,
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
            MANIFEST_KEY: dg.MetadataValue.json(json.loads(json.dumps(manifest, default=str))),
        },
        data_version=dg.DataVersion(manifest.get("weights_sha256", "")),
    )


def _train_with_torchrun(context: dg.AssetExecutionContext, job_path: Path, nproc: int) -> None:
    """Launch ``torchrun --nproc_per_node=N`` through Dagster Pipes; rank 0 reports back."""
    from paraclip_pipeline.training.distributed import build_torchrun_command

    client = dg.PipesSubprocessClient()
    client.run(command=build_torchrun_command(job_path, nproc), context=context)


def _train_with_ray(
    context: dg.AssetExecutionContext, job_path: Path, nproc: int, ray: RayResource
) -> None:
    """``nproc`` Ray Train workers on the configured cluster; rank 0 writes the checkpoint
    to the storage root, which every node must see (shared storage)."""
    from paraclip_pipeline.distributed.ray_train import RayTrainSpec, train_on_ray

    assert ray.address is not None
    spec = RayTrainSpec(
        address=ray.address,
        num_workers=nproc,
        cpus_per_worker=ray.cpus_per_task,
        gpus_per_worker=ray.gpus_per_task,
        max_failures=ray.max_failures,
    )
    context.log.info(f"training on Ray at {ray.address}: {spec.num_workers} Ray Train worker(s)")
    train_on_ray(job_path, spec)
