"""Which filtered_pairs partitions a rules reload made stale, shown per partition at once.

Dagster's "unsynced" badge ignores partitioned staleness (dagster#22553), and automation
refilters shard after shard, so without this the first sign of a rules edit on a shard's
page was its refilter landing. On the first tick after a code location loads with new
rules (a new filtered_pairs code version), ``rules_staleness_sensor`` writes one
``AssetObservation`` on every stale partition (``rules_status: stale``, the code version
it was built with and the current one) and logs the list once; the observation is on the
partition's page before its refilter run has produced anything, and the refilter's
materialization supersedes it.
"""

import dagster as dg

from paraclip_pipeline.asset_names import FILTERED_PAIRS
from paraclip_pipeline.lineage.shard_status import stale_rules_partitions

RULES_STATUS_KEY = "rules_status"
STALE = "stale"
SENSOR_NAME = "rules_staleness_sensor"


def stale_rules_events(
    instance: dg.DagsterInstance, code_version: str
) -> list[dg.AssetObservation]:
    """One observation per registered, non-quarantined partition filtered with other rules."""
    return [
        dg.AssetObservation(
            FILTERED_PAIRS,
            partition=shard,
            metadata={
                RULES_STATUS_KEY: STALE,
                "built_with": built_with or "-",
                "current_rules": code_version,
            },
        )
        for shard, built_with in stale_rules_partitions(instance, code_version).items()
    ]


def build_rules_staleness_sensor(code_version: str) -> dg.SensorDefinition:
    @dg.sensor(
        name=SENSOR_NAME,
        minimum_interval_seconds=15,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "After a rules reload, marks each stale filtered_pairs partition (an observation "
            "on its page) before automation refilters it."
        ),
    )
    def rules_staleness_sensor(context: dg.SensorEvaluationContext):
        # The cursor is the code version already published: once per rules version.
        if context.cursor == code_version:
            return dg.SkipReason(f"stale partitions for {code_version} already marked")
        events = stale_rules_events(context.instance, code_version)
        if events:
            shards = ", ".join(event.partition or "" for event in events)
            context.log.info(
                f"filter rules are now {code_version}: {len(events)} filtered_pairs "
                f"partition(s) stale until refiltered: {shards}"
            )
        return dg.SensorResult(asset_events=events, cursor=code_version)

    return rules_staleness_sensor
