"""The retraining policy sensor: when automation requests text_encoder_checkpoint.

One sensor for every policy (``retrain_policy.py``), so an added, changed, removed or newly
quarantined shard all count the same way: the shards pending against the latest
checkpoint (``lineage.pending``). Dagster's automation conditions see a dependency's
data version change but not a retired partition (a removed good shard left the
checkpoint trained on a shard that no longer exists), and cannot count changed
partitions against a threshold or wait for a cron tick, hence a sensor.

Each tick that sees a different pending set writes an observation on
``text_encoder_checkpoint`` (the asset's page: ``pending_shards``, the policy, what it
waits for) and logs it once. It requests a training run only when no run that could change the
inputs is queued or running (``_busy``), no trained shard waits for its refilter, and the
policy is due; the run key is the trainable state, so one state is
trained at most once however often the sensor ticks.
"""

from datetime import UTC, datetime

import dagster as dg
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES
from dagster._core.storage.tags import PARTITION_NAME_TAG as PARTITION_TAG
from dagster._utils.schedules import get_latest_completed_cron_tick, is_valid_cron_string

from paraclip_pipeline.asset_names import TEXT_ENCODER_CHECKPOINT
from paraclip_pipeline.defs.automation import training_job
from paraclip_pipeline.defs.metadata import records_table
from paraclip_pipeline.lineage.pending import Pending, pending_shards
from paraclip_pipeline.retrain_policy import RETRAIN_POLICY_ENV, RetrainPolicy

SENSOR_NAME = "retrain_policy_sensor"
REASON_TAG = "paraclip/reason"
PENDING_COLUMNS = ["partition", "change", "reason"]


def due_reason(policy: RetrainPolicy, pending: Pending, now: datetime) -> str | None:
    """Why the policy retrains now, or None while it waits."""
    count = len(pending.shards)
    if not count:
        return None
    if pending.checkpoint_timestamp is None:
        return "first checkpoint"
    if policy.due_by_count(count):
        return f"{count} shard(s) pending (policy {policy.describe()})"
    if policy.cron:
        tick = get_latest_completed_cron_tick(policy.cron, now, "UTC")
        if tick.timestamp() > pending.checkpoint_timestamp:
            return f"cron {policy.cron} ticked at {tick:%Y-%m-%d %H:%M} UTC"
    return None


def pending_observation(policy: RetrainPolicy, pending: Pending) -> dg.AssetObservation:
    return dg.AssetObservation(
        TEXT_ENCODER_CHECKPOINT,
        metadata={
            "retrain_policy": policy.describe(),
            "pending_count": len(pending.shards),
            "pending_shards": records_table(pending.rows(), PENDING_COLUMNS),
            "waiting_for_refilter": ", ".join(pending.waiting) or "none",
        },
    )


def build_retrain_sensor(policy: RetrainPolicy, code_version: str) -> dg.SensorDefinition:
    if policy.cron and not is_valid_cron_string(policy.cron):
        raise ValueError(f"{RETRAIN_POLICY_ENV}: {policy.cron!r} is not a valid cron expression")

    @dg.sensor(
        name=SENSOR_NAME,
        job=training_job,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Retrains the text encoder by the retraining policy ({policy.describe()}); the "
            "shards pending since the latest checkpoint are on text_encoder_checkpoint's page."
        ),
    )
    def retrain_policy_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        pending = pending_shards(context.instance, code_version)
        events = []
        if pending.digest() != context.cursor:
            events.append(pending_observation(policy, pending))
            listed = ", ".join(f"{s.partition} ({s.change})" for s in pending.shards)
            context.log.info(f"{len(pending.shards)} shard(s) pending: {listed or 'none'}")
        busy = _busy(context.instance, pending)
        reason = None if busy or pending.waiting else due_reason(policy, pending, _now())
        requests = []
        if reason and pending.trainable:
            context.log.info(f"retraining: {reason}")
            requests.append(
                dg.RunRequest(run_key=f"retrain:{pending.target}", tags={REASON_TAG: reason})
            )
        return dg.SensorResult(run_requests=requests, asset_events=events, cursor=pending.digest())

    return retrain_policy_sensor


def _busy(instance: dg.DagsterInstance, pending: Pending) -> bool:
    """A run is queued or running that could change what a retrain trains on: one without
    a partition (training, a report, a backfill) or one of a shard that trains or trained.
    A new shard still being built does not hold retraining back (at scale its paraphrase
    run can take hours while the others wait)."""
    involved = set(pending.trainable) | set(pending.trained)
    runs = instance.get_runs(dg.RunsFilter(statuses=list(IN_PROGRESS_RUN_STATUSES)))
    return any(run.tags.get(PARTITION_TAG) in involved | {None} for run in runs)


def _now() -> datetime:
    return datetime.now(UTC)
