"""Jobs, the new-shard sensor, the nightly refresh schedule and the automation sensor.

All are on by default under ``dagster dev`` so a new shard dropped into the shard
location flows through the whole graph without anyone clicking.
"""

from dataclasses import replace

import dagster as dg

from paraclip_pipeline.asset_names import FILTERED_PAIRS
from paraclip_pipeline.defs.captions import raw_captions
from paraclip_pipeline.defs.paraphrases import stage1_paraphrases, stage2_paraphrases
from paraclip_pipeline.defs.partitions import caption_shards
from paraclip_pipeline.defs.reports import benchmark_report
from paraclip_pipeline.defs.resources import ShardSourceResource
from paraclip_pipeline.defs.training import image_embeddings, text_encoder_checkpoint
from paraclip_pipeline.lineage.event_log import (
    latest_partition_records,
    latest_partition_versions,
)
from paraclip_pipeline.lineage.shard_status import quarantine_observations
from paraclip_pipeline.sources.changes import ScanCursor, scan_for_changes

FILTERED_PAIRS_KEY = dg.AssetKey(FILTERED_PAIRS)
PER_SHARD_ASSETS = [
    raw_captions.key,
    stage1_paraphrases.key,
    stage2_paraphrases.key,
    FILTERED_PAIRS_KEY,
    image_embeddings.key,
]
LLM_TAG = "paraclip/llm_backend"

shard_job = dg.define_asset_job(
    "shard_job",
    selection=dg.AssetSelection.assets(*PER_SHARD_ASSETS),
    partitions_def=caption_shards,
    tags={LLM_TAG: "default"},
    description="Every per-shard asset for one caption shard: ingest, paraphrase, filter, embed.",
)
training_job = dg.define_asset_job(
    "training_job",
    selection=dg.AssetSelection.assets(text_encoder_checkpoint, benchmark_report),
    description="Fine-tune the text tower on all filtered shards, then write the report.",
)


@dg.sensor(
    job=shard_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Registers new caption shards as partitions, runs changed or new shards, retires the "
        "partitions of removed shard files and reports each quarantined shard once."
    ),
)
def new_shard_sensor(
    context: dg.SensorEvaluationContext, shard_source: ShardSourceResource
) -> dg.SensorResult:
    known = set(context.instance.get_dynamic_partitions(caption_shards.name))

    def recorded_hashes(keys: list[str]) -> dict[str, str | None]:
        records = latest_partition_versions(context.instance, raw_captions.key, keys)
        return {key: records[key].data_version if key in records else None for key in keys}

    scan = scan_for_changes(
        shard_source.location,
        known_keys=known,
        recorded_hashes=recorded_hashes,
        cursor=ScanCursor.parse(context.cursor),
    )
    for name, reason in scan.newly_rejected:
        context.log.warning(f"ignoring shard {name!r}: {reason}")
    cursor = _report_quarantines(context, scan.cursor, set(scan.removed))
    for key in scan.removed:
        context.log.info(f"retiring shard {key}: its file is gone from {shard_source.location}")
    new_keys = [shard.key for shard, *_ in scan.new]
    partition_requests: list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest]
    partition_requests = [caption_shards.build_add_request(new_keys)] if new_keys else []
    if scan.removed:
        partition_requests.append(caption_shards.build_delete_request(scan.removed))
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(run_key=f"{shard.key}:{content_hash}:{mtime_ns}", partition_key=shard.key)
            for shard, content_hash, mtime_ns in scan.due
        ],
        dynamic_partitions_requests=partition_requests,
        cursor=cursor.serialize(),
    )


def _report_quarantines(
    context: dg.SensorEvaluationContext, cursor: ScanCursor, retiring: set[str]
) -> ScanCursor:
    """Log each new quarantine once (the cursor keeps the newest storage id reported)."""
    quarantined = quarantine_observations(context.instance)
    newest = cursor.quarantine_storage_id
    for key, (storage_id, reason) in sorted(quarantined.items()):
        if storage_id <= cursor.quarantine_storage_id or key in retiring:
            continue
        newest = max(newest, storage_id)
        context.log.warning(
            f"shard {key} is quarantined (left out of training): {reason}. Fix the file to "
            f"retry it, remove it to retire the partition, or `paraclip shards retire {key}`."
        )
    return replace(cursor, quarantine_storage_id=newest)


def refresh_requests(
    instance: dg.DagsterInstance, filtered_pairs_code_version: str
) -> list[dg.RunRequest]:
    """Shards whose per-shard outputs are missing or stale; retraining once they land is
    the retraining policy's (``defs/retraining.py``)."""
    shards = instance.get_dynamic_partitions(caption_shards.name)
    raw = latest_partition_versions(instance, raw_captions.key)
    pairs = latest_partition_records(instance, FILTERED_PAIRS_KEY)
    embeddings = latest_partition_versions(instance, image_embeddings.key)
    # A quarantined shard reruns when its file changes (the sensor), not every night.
    quarantined = quarantine_observations(instance)
    requests = []
    for shard in shards:
        if shard in quarantined:
            continue
        pair = pairs.get(shard)
        embedding = embeddings.get(shard)
        source = raw.get(shard)
        stale = (
            pair is None
            or embedding is None
            or source is None
            or pair.code_version != filtered_pairs_code_version
            or pair.storage_id < source.storage_id
            or embedding.storage_id < source.storage_id
        )
        if stale:
            requests.append(
                dg.RunRequest(
                    partition_key=shard,
                    asset_selection=PER_SHARD_ASSETS,
                    tags={"paraclip/reason": "refresh", LLM_TAG: "default"},
                )
            )
    return requests


def build_nightly_refresh(cron_schedule: str, filtered_pairs_code_version: str):
    @dg.schedule(
        name="nightly_refresh",
        cron_schedule=cron_schedule,
        target=dg.AssetSelection.all(),
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Rebuild missing or stale shards (the retraining policy retrains).",
    )
    def nightly_refresh(context: dg.ScheduleEvaluationContext):
        requests = refresh_requests(context.instance, filtered_pairs_code_version)
        if not requests:
            return dg.SkipReason("every shard is up to date")
        return requests

    return nightly_refresh


automation_sensor = dg.AutomationConditionSensorDefinition(
    "paraclip_automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)
