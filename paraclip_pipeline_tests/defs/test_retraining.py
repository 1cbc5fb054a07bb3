"""The retraining policy: which shards are pending against the latest checkpoint, and when
the sensor requests a retrain under each policy (eager, after N shards, cron)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
import pytest
from dagster._core.definitions.data_version import CODE_VERSION_TAG, DATA_VERSION_TAG

from paraclip_pipeline.asset_names import (
    FILTERED_PAIRS,
    IMAGE_EMBEDDINGS,
    RAW_CAPTIONS,
    TEXT_ENCODER_CHECKPOINT,
)
from paraclip_pipeline.defs.partitions import caption_shards
from paraclip_pipeline.defs.retraining import build_retrain_sensor, due_reason
from paraclip_pipeline.lineage.pending import (
    CHANGED,
    LEFT_OUT,
    NEW,
    REMOVED,
    Pending,
    PendingShard,
    pending_shards,
)
from paraclip_pipeline.lineage.shard_status import QUARANTINE_REASON_KEY
from paraclip_pipeline.retrain_policy import RetrainPolicy

RULES = "rules-1"
EAGER = RetrainPolicy.parse("eager")


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


def _built(instance: dg.DagsterInstance, shard: str, pairs: str, code: str = RULES) -> None:
    """A shard's filtered_pairs (data version ``pairs``) and image embeddings."""
    instance.add_dynamic_partitions(caption_shards.name, [shard])
    for asset, version, tags in (
        (RAW_CAPTIONS, f"raw-{shard}", {}),
        (IMAGE_EMBEDDINGS, f"emb-{shard}", {}),
        (FILTERED_PAIRS, pairs, {CODE_VERSION_TAG: code}),
    ):
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset, partition=shard, tags={DATA_VERSION_TAG: version, **tags}
            )
        )


def _checkpoint(instance: dg.DagsterInstance, trained: dict[str, str]) -> None:
    inputs = [
        {
            "partition": shard,
            "filtered_pairs_data_version": pairs,
            "upstream": {IMAGE_EMBEDDINGS: {"data_version": f"emb-{shard}"}},
        }
        for shard, pairs in trained.items()
    ]
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            TEXT_ENCODER_CHECKPOINT,
            metadata={"manifest": dg.MetadataValue.json({"inputs": inputs})},
        )
    )


def _changes(instance: dg.DagsterInstance) -> dict[str, str]:
    return {s.partition: s.change for s in pending_shards(instance, RULES).shards}


def _tick(instance: dg.DagsterInstance, policy: RetrainPolicy, cursor: str | None = None):
    sensor = build_retrain_sensor(policy, RULES)
    result = sensor(dg.build_sensor_context(instance=instance, cursor=cursor))
    assert isinstance(result, dg.SensorResult)
    return result


def test_pending_is_new_changed_removed_or_left_out_never_an_identical_rerun(instance) -> None:
    for shard in ("a", "b", "c", "d"):
        _built(instance, shard, f"pairs-{shard}")
    _checkpoint(instance, {s: f"pairs-{s}" for s in ("a", "b", "c", "d")})
    assert _changes(instance) == {}

    _built(instance, "a", "pairs-a")  # identical refilter: same data version
    _built(instance, "b", "pairs-b2")  # changed rows
    _built(instance, "e", "pairs-e")  # a new shard
    instance.delete_dynamic_partition(caption_shards.name, "c")  # file removed: retired
    instance.report_runless_asset_event(
        dg.AssetObservation(RAW_CAPTIONS, partition="d", metadata={QUARANTINE_REASON_KEY: "bad"})
    )
    assert _changes(instance) == {"b": CHANGED, "e": NEW, "c": REMOVED, "d": LEFT_OUT}


def test_trained_shard_awaiting_its_refilter_holds_retraining(instance) -> None:
    _built(instance, "a", "pairs-a")
    _built(instance, "b", "pairs-b")
    _checkpoint(instance, {"a": "pairs-a", "b": "pairs-b"})
    _built(instance, "a", "pairs-a2")
    _built(instance, "b", "pairs-b", code="rules-0")  # filtered with older rules
    pending = pending_shards(instance, RULES)
    assert pending.waiting == ["b"]
    assert _tick(instance, EAGER).run_requests == []
    _built(instance, "b", "pairs-b2")  # the refilter lands
    assert len(_tick(instance, EAGER).run_requests) == 1


def test_removing_a_trained_shard_requests_a_retrain_once(instance) -> None:
    _built(instance, "a", "pairs-a")
    _built(instance, "b", "pairs-b")
    _checkpoint(instance, {"a": "pairs-a", "b": "pairs-b"})
    assert _tick(instance, EAGER).run_requests == []
    instance.delete_dynamic_partition(caption_shards.name, "b")  # the sensor retired it
    first = _tick(instance, EAGER)
    [request] = first.run_requests
    assert "1 shard(s) pending" in request.tags["paraclip/reason"]
    # The same state again: the same run key, so Dagster launches it once.
    assert _tick(instance, EAGER, first.cursor).run_requests[0].run_key == request.run_key


def test_after_shards_waits_for_n_and_shows_the_pending_shards(instance) -> None:
    policy = RetrainPolicy.parse("after_shards:3")
    _built(instance, "a", "pairs-a")
    _checkpoint(instance, {"a": "pairs-a"})
    _built(instance, "b", "pairs-b")
    _built(instance, "c", "pairs-c")
    result = _tick(instance, policy)
    assert result.run_requests == []
    [observation] = result.asset_events
    assert observation.asset_key == dg.AssetKey(TEXT_ENCODER_CHECKPOINT)
    assert observation.metadata["pending_count"].value == 2
    rows = [record.data for record in observation.metadata["pending_shards"].value.records]
    assert [(row["partition"], row["change"]) for row in rows] == [("b", NEW), ("c", NEW)]
    # Unchanged pending set: no second observation.
    assert _tick(instance, policy, result.cursor).asset_events == []
    _built(instance, "d", "pairs-d")
    assert len(_tick(instance, policy, result.cursor).run_requests) == 1


def test_first_checkpoint_trains_at_once_and_a_busy_shard_run_waits(instance) -> None:
    policy = RetrainPolicy.parse("after_shards:3")
    _built(instance, "a", "pairs-a")
    run = instance.create_run_for_job(
        dg.GraphDefinition("noop").to_job(), tags={"dagster/partition": "a"}
    )
    instance.handle_run_event(
        run.run_id,
        dg.DagsterEvent(
            event_type_value=dg.DagsterEventType.RUN_START.value, job_name=run.job_name
        ),
    )
    assert _tick(instance, policy).run_requests == []  # a's run may change its pairs
    instance.report_run_failed(instance.get_run_by_id(run.run_id))
    [request] = _tick(instance, policy).run_requests
    assert request.tags["paraclip/reason"] == "first checkpoint"


def _pending(count: int, checkpoint_at: datetime) -> Pending:
    shards = [PendingShard(f"s{i}", NEW) for i in range(count)]
    return Pending(shards, [], "t", checkpoint_at.timestamp(), ["s0"])


def test_cron_policy_retrains_at_the_first_tick_after_the_checkpoint() -> None:
    policy = RetrainPolicy.parse("cron:0 3 * * *")
    checkpoint_at = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    before_tick = datetime(2026, 5, 2, 2, 59, tzinfo=UTC)
    after_tick = datetime(2026, 5, 2, 3, 1, tzinfo=UTC)
    assert due_reason(policy, _pending(5, checkpoint_at), before_tick) is None
    assert "cron 0 3 * * * ticked" in (
        due_reason(policy, _pending(1, checkpoint_at), after_tick) or ""
    )
    assert due_reason(policy, _pending(0, checkpoint_at), after_tick) is None
    # Combined with a count, whichever comes first.
    both = RetrainPolicy.parse("after_shards:2+cron:0 3 * * *")
    assert due_reason(both, _pending(2, checkpoint_at), before_tick) is not None
