"""docker/dagster.yaml, loaded as the containers load it, against a real PostgreSQL server."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.config import PoolGranularity
from dagster._core.launcher import DefaultRunLauncher
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from paraclip_pipeline_tests.deploy import tiny_definitions
from paraclip_pipeline_tests.deploy.support import DOCKER_DIR, PostgresServer

pytestmark = pytest.mark.postgres


@pytest.fixture
def docker_dagster_home(
    tmp_path: Path, postgres_database: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A DAGSTER_HOME with the unmodified docker/dagster.yaml; its env points at the test DB."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DOCKER_DIR / "dagster.yaml", home / "dagster.yaml")
    for name, value in postgres_database.dagster_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DAGSTER_LOCAL_ARTIFACT_STORAGE_DIR", str(tmp_path / "artifacts"))
    monkeypatch.setenv("DAGSTER_COMPUTE_LOGS_DIR", str(tmp_path / "compute_logs"))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    yield home


def test_storages_are_postgres_and_queue_limits_apply(docker_dagster_home: Path) -> None:
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        assert isinstance(instance.run_launcher, DefaultRunLauncher)
        assert not instance.telemetry_enabled
        assert not instance.nux_enabled
        assert instance.run_monitoring_enabled

        concurrency = instance.get_concurrency_config()
        assert concurrency.pool_config.default_pool_limit == 2
        assert concurrency.pool_config.pool_granularity == PoolGranularity.OP
        run_queue = concurrency.run_queue_config
        assert run_queue is not None
        assert run_queue.max_concurrent_runs == 4
        assert run_queue.tag_concurrency_limits == [
            {
                "key": "paraclip/llm_backend",
                "value": {"applyLimitPerUniqueValue": True},
                "limit": 2,
            },
            {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1},
        ]


def test_materialization_round_trips_through_postgres(
    docker_dagster_home: Path, postgres_database: PostgresServer, tmp_path: Path
) -> None:
    with dg.DagsterInstance.get() as instance:
        result = dg.materialize(
            [tiny_definitions.tiny_captions, tiny_definitions.tiny_caption_lengths],
            instance=instance,
        )
        assert result.success
        assert result.output_for_node("tiny_caption_lengths") == [5, 6]

    # A second instance reads only what Postgres kept, not any in-memory state.
    with dg.DagsterInstance.get() as reader:
        event = reader.get_latest_materialization_event(dg.AssetKey("tiny_caption_lengths"))
        assert event is not None and event.run_id == result.run_id
        materialization = event.asset_materialization
        assert materialization is not None
        assert materialization.metadata["rows"].value == 2
        assert materialization.metadata["total_words"].value == 11
        run = reader.get_run_by_id(result.run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS

    connection = postgres_database.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT status FROM runs WHERE run_id = %s", (result.run_id,))
            assert cursor.fetchall() == [("SUCCESS",)]
            cursor.execute(
                "SELECT count(*) FROM event_logs WHERE run_id = %s "
                "AND dagster_event_type = 'ASSET_MATERIALIZATION'",
                (result.run_id,),
            )
            assert cursor.fetchone() == (2,)
    finally:
        connection.close()

    # Step outputs and compute logs land in the configured directories (in compose: the
    # shared storage volume), not under DAGSTER_HOME.
    assert (tmp_path / "artifacts" / "storage" / "tiny_caption_lengths").is_file()
    assert any((tmp_path / "compute_logs" / result.run_id).rglob("*.complete"))
    assert sorted(path.name for path in docker_dagster_home.iterdir()) == ["dagster.yaml"]
