"""The per-shard steps on Ray: one multi-asset over a batch of partitions, one Ray job a step.

Used in place of the five per-shard assets when ``PARACLIP_RAY_ADDRESS`` is set (the choice is
made when the code location loads, like the backfill policy it needs). Same asset keys,
dependencies, code versions, groups, automation and checks as the in-process assets (taken
from their specs), so the graph, lineage and the UI look the same; only the engine differs.

Why a multi-asset that reports its own materializations: a Dagster run over a range of
partitions can give an ``Output`` only one data version, which Dagster copies to every
partition (dagster#34013), and Pipes' ``report_asset_materialization`` takes no partition.
Here each step's Ray job returns one record per shard and the asset yields one
``AssetMaterialization(partition=shard)`` per shard carrying the tags Dagster itself writes
for an in-process ``Output`` (data version, code version, each parent partition's data
version and event pointer), so staleness and lineage read the same as in-process. The specs
are ``skippable`` (no ``Output``), so the IO manager never loads a batch's tables into the
run's process; the steps read and write the storage layout themselves.
"""

import hashlib
import json
from collections.abc import Iterator, Sequence

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)
from dagster._core.definitions.data_version import (
    CODE_VERSION_TAG,
    DATA_VERSION_IS_USER_PROVIDED_TAG,
    DATA_VERSION_TAG,
    DEFAULT_DATA_VERSION,
    NULL_EVENT_POINTER,
    get_input_data_version_tag,
    get_input_event_pointer_tag,
)
from dagster._core.storage.tags import BACKFILL_ID_TAG

from paraclip_pipeline.asset_names import FILTERED_PAIRS
from paraclip_pipeline.defs.captions import quarantine
from paraclip_pipeline.defs.filtering import check_filtered_pairs
from paraclip_pipeline.defs.paraphrases import LLM_POOL
from paraclip_pipeline.defs.resources import (
    ClipModelResource,
    ParaphraserResource,
    RayResource,
    ShardSourceResource,
    StorageResource,
)
from paraclip_pipeline.distributed import ENGINE_RAY
from paraclip_pipeline.distributed.shard_steps import STEP_ORDER, ShardRecord, StepOptions
from paraclip_pipeline.lineage.event_log import latest_partition_versions
from paraclip_pipeline.settings import Settings


def provenance_tags(
    instance: dg.DagsterInstance,
    spec: dg.AssetSpec,
    shard: str,
    data_version: str,
) -> dict[str, str]:
    """The tags Dagster writes on an in-process ``Output(data_version=...)`` of one partition.

    A partitioned parent's input data version is, as Dagster computes it for a run's input
    partitions, the sha256 of their data versions joined in key order (here: the one shard's),
    and the event pointer that partition's latest materialization.
    """
    tags = {CODE_VERSION_TAG: spec.code_version or ""}
    for dep in spec.deps:
        parent = latest_partition_versions(instance, dep.asset_key, [shard]).get(shard)
        tags[get_input_data_version_tag(dep.asset_key)] = (
            hashlib.sha256((parent.data_version or "").encode()).hexdigest()
            if parent
            else DEFAULT_DATA_VERSION.value
        )
        tags[get_input_event_pointer_tag(dep.asset_key)] = (
            str(parent.storage_id) if parent else NULL_EVENT_POINTER
        )
    tags[DATA_VERSION_TAG] = data_version
    tags[DATA_VERSION_IS_USER_PROVIDED_TAG] = "true"
    return tags


def _step_options(
    settings: Settings,
    storage: StorageResource,
    shard_source: ShardSourceResource,
    paraphraser: ParaphraserResource,
    clip_model: ClipModelResource,
) -> StepOptions:
    return StepOptions(
        storage_root=storage.root,
        batch_rows=storage.batch_rows,
        location=shard_source.location,
        image_root=shard_source.image_root,
        max_caption_chars=shard_source.max_caption_chars,
        paraphraser=paraphraser.model_dump(exclude_none=True),
        rules_path=str(settings.filter_rules_path),
        clip_profile=clip_model.profile,
        clip_device=clip_model.device,
    )


def build_ray_shard_steps(
    settings: Settings, in_process: Sequence[dg.AssetsDefinition]
) -> dg.AssetsDefinition:
    """The multi-asset standing in for ``in_process`` (the five per-shard assets) on Ray."""
    specs = {
        spec.key: spec.replace_attributes(skippable=True)
        for assets in in_process
        for spec in assets.specs
    }
    order = [dg.AssetKey(name) for name in STEP_ORDER]
    check_specs = [check for assets in in_process for check in assets.check_specs]

    @dg.multi_asset(
        name="per_shard_steps_on_ray",
        specs=[specs[key] for key in order],
        check_specs=check_specs,
        can_subset=True,
        pool=LLM_POOL,
        backfill_policy=dg.BackfillPolicy.multi_run(settings.ray_partitions_per_run),
    )
    def per_shard_steps_on_ray(
        context: dg.AssetExecutionContext,
        ray: RayResource,
        storage: StorageResource,
        shard_source: ShardSourceResource,
        paraphraser: ParaphraserResource,
        clip_model: ClipModelResource,
    ) -> Iterator[dg.AssetMaterialization | dg.AssetCheckResult]:
        from paraclip_pipeline.distributed.ray_shards import run_step_on_ray

        options = _step_options(settings, storage, shard_source, paraphraser, clip_model)
        shards = list(context.partition_keys)
        failed: dict[str, str] = {}
        quarantined: set[str] = set()
        for key in order:
            if key not in context.selected_asset_keys:
                continue
            todo = [shard for shard in shards if shard not in failed and shard not in quarantined]
            context.log.info(f"{key.to_user_string()}: {len(todo)} shard(s) as one Ray job")
            records = run_step_on_ray(
                key.path[-1],
                todo,
                options,
                address=ray.address,
                cpus_per_task=ray.cpus_per_task,
                actors=ray.actors,
            )
            for record in records:
                if record["quarantine"]:  # unreadable file: left out, as in-process
                    content_hash = json.loads(record["metadata_json"])["content_sha256"]
                    quarantine(context, record["shard"], record["quarantine"], content_hash)
                    quarantined.add(record["shard"])
                elif record["error"]:
                    failed[record["shard"]] = f"{key.to_user_string()}: {record['error']}"
                else:
                    yield _materialization(context, specs[key], record)
            if key.path[-1] == FILTERED_PAIRS:
                yield from _batch_checks(context, records, settings)
        if failed:
            detail = "; ".join(f"{shard}: {why}" for shard, why in sorted(failed.items()))
            raise dg.Failure(
                description=f"{len(failed)} of {len(shards)} shard(s) failed on Ray: {detail}",
                allow_retries=False,
            )

    return per_shard_steps_on_ray


def _materialization(
    context: dg.AssetExecutionContext, spec: dg.AssetSpec, record: ShardRecord
) -> dg.AssetMaterialization:
    tags = provenance_tags(context.instance, spec, record["shard"], record["data_version"])
    backfill_id = context.run.tags.get(BACKFILL_ID_TAG)
    if backfill_id:
        tags[BACKFILL_ID_TAG] = backfill_id
    return dg.AssetMaterialization(
        spec.key,
        partition=record["shard"],
        tags=tags,
        metadata={
            "engine": ENGINE_RAY,
            "rows": record["rows"],
            "path": dg.MetadataValue.path(record["path"]),
            **{
                name: dg.MetadataValue.json(value) if isinstance(value, dict) else value
                for name, value in json.loads(record["metadata_json"]).items()
            },
        },
    )


def _batch_checks(
    context: dg.AssetExecutionContext, records: list[ShardRecord], settings: Settings
) -> list[dg.AssetCheckResult]:
    """filtered_pairs' training-gate checks over the batch. A yielded check result has no
    partition in a multi-partition run, so each passes only if it passes on every shard,
    naming those it fails on; each shard's own result is logged as a partitioned
    ``AssetCheckEvaluation`` on its new materialization, which is what training's
    eligibility reads (``lineage.shard_status``), so a failing shard is left out as
    in-process."""
    from pathlib import Path

    from paraclip_pipeline.filtering.rules import load_rules
    from paraclip_pipeline.filtering.stream import kept_quality

    bounds = load_rules(settings.filter_rules_path).pass_rate_bounds
    failing: dict[str, list[str]] = {}
    names: list[str] = []
    for record in records:
        if record["error"] or record["quarantine"]:
            continue
        metadata = json.loads(record["metadata_json"])
        quality = kept_quality(Path(record["path"]))
        target = _latest_pairs(context.instance, record["shard"])
        for result in check_filtered_pairs(quality, metadata["pass_rate"], bounds):
            name = result.check_name or ""
            if name not in names:
                names.append(name)
            if not result.passed:
                failing.setdefault(name, []).append(record["shard"])
            context.log_event(
                dg.AssetCheckEvaluation(
                    asset_key=dg.AssetKey(FILTERED_PAIRS),
                    check_name=name,
                    passed=result.passed,
                    metadata=result.metadata,
                    target_materialization_data=target,
                    severity=result.severity,
                    description=result.description,
                    blocking=False,
                    partition=record["shard"],
                )
            )
    return [
        dg.AssetCheckResult(
            check_name=name,
            passed=not failing.get(name),
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"failing_shards": ", ".join(failing.get(name, [])) or "none"},
        )
        for name in names
    ]


def _latest_pairs(
    instance: dg.DagsterInstance, shard: str
) -> AssetCheckEvaluationTargetMaterializationData | None:
    """The shard's filtered_pairs materialization this step just recorded."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(dg.AssetKey(FILTERED_PAIRS), asset_partitions=[shard]), limit=1
    ).records
    if not records:
        return None
    record = records[0]
    return AssetCheckEvaluationTargetMaterializationData(
        storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
    )
