"""A throwaway Dagster deployment of the real code location, served as ``paraclip ui`` does.

``dagster-webserver`` comes up first so the test can switch the sensors and the schedule off
over GraphQL (they default to RUNNING and would otherwise race the test for the shard);
only then does ``dagster-daemon`` start, to dequeue the runs the test launches.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from paraclip_pipeline.instance import local_instance_config
from paraclip_pipeline.settings import REPO_ROOT
from paraclip_pipeline.storage import write_text_atomic
from paraclip_pipeline_tests.ui.harness import (
    DagsterGraphQL,
    GraphQLError,
    dagster_tool,
    managed_processes,
    start_process,
)

LOCATION_NAME = "paraclip_pipeline"
REPOSITORY_NAME = "__repository__"
REPOSITORY_SELECTOR = {"repositoryName": REPOSITORY_NAME, "repositoryLocationName": LOCATION_NAME}
SHARD_KEY = "ui_shard_000"
ARTIFACTS_ENV = "PARACLIP_ARTIFACTS_DIR"
# The code location imports torch and friends: on a busy two-core machine that takes a while.
SERVE_TIMEOUT_S = 240.0

CAPTIONS = [
    "A dog running along a sandy beach at sunset",
    "Two cats asleep on a red sofa",
    "A man riding a bicycle through a busy city street",
    "A bowl of fresh fruit on a wooden kitchen table",
    "Children playing football in a green park",
    "A small boat tied to a pier on a calm lake",
    "A woman reading a book under a large oak tree",
    "Snow covered mountains behind a quiet village",
    "A plate of pasta with tomato sauce and basil",
    "An old clock tower in the middle of a square",
    "A horse grazing in a field beside a fence",
    "A cup of coffee next to an open laptop",
]


@dataclass(frozen=True)
class Deployment:
    base_url: str
    graphql: DagsterGraphQL
    storage_root: Path
    shard_key: str
    caption_count: int
    stopped_instigators: list[str]


def free_local_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def artifacts_dir() -> Path:
    """``<PARACLIP_ARTIFACTS_DIR or ./artifacts>/ui``: kept by CI, ignored by git."""
    return Path(os.environ.get(ARTIFACTS_ENV) or REPO_ROOT / "artifacts") / "ui"


def write_shard(shards_dir: Path, key: str) -> Path:
    lines = [
        json.dumps({"id": f"{key}-{index:03d}", "caption": caption})
        for index, caption in enumerate(CAPTIONS)
    ]
    return write_text_atomic("\n".join(lines) + "\n", shards_dir / f"{key}.jsonl")


def deployment_env(tmp: Path, shards_dir: Path) -> dict[str, str]:
    dagster_home = tmp / "dagster_home"
    dagster_home.mkdir()
    write_text_atomic(
        yaml.safe_dump(local_instance_config(), sort_keys=False), dagster_home / "dagster.yaml"
    )
    return {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "PARACLIP_STORAGE_ROOT": str(tmp / "storage"),
        "PARACLIP_SHARDS_LOCATION": str(shards_dir),
        "PARACLIP_MODEL_PROFILE": "tiny-random",
        "PARACLIP_LLM_BACKEND": "wordnet",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "DAGSTER_DISABLE_TELEMETRY": "1",
        # Few threads per process: webserver, daemon, code servers and a run share two cores.
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def stop_all_instigators(graphql: DagsterGraphQL) -> list[str]:
    """Switch every sensor and schedule off, as a person would with the UI's toggles."""
    data = graphql.execute(
        """
        query Instigators($repo: RepositorySelector!) {
          repositoryOrError(repositorySelector: $repo) {
            __typename
            ... on Repository {
              sensors { name sensorState { id status } }
              schedules { name scheduleState { id status } }
            }
          }
        }
        """,
        {"repo": REPOSITORY_SELECTOR},
    )
    repository = data["repositoryOrError"]
    if repository["__typename"] != "Repository":
        raise GraphQLError(f"Instigators: {repository}")
    stopped = []
    for sensor in repository["sensors"]:
        result = graphql.execute(
            """
            mutation StopSensor($id: String!) {
              stopSensor(id: $id) {
                __typename
                ... on StopSensorMutationResult { instigationState { status } }
                ... on PythonError { message }
              }
            }
            """,
            {"id": sensor["sensorState"]["id"]},
        )["stopSensor"]
        if result.get("instigationState", {}).get("status") != "STOPPED":
            raise GraphQLError(f"StopSensor {sensor['name']}: {result}")
        stopped.append(sensor["name"])
    for schedule in repository["schedules"]:
        result = graphql.execute(
            """
            mutation StopSchedule($id: String!) {
              stopRunningSchedule(id: $id) {
                __typename
                ... on ScheduleStateResult { scheduleState { status } }
                ... on PythonError { message }
              }
            }
            """,
            {"id": schedule["scheduleState"]["id"]},
        )["stopRunningSchedule"]
        if result.get("scheduleState", {}).get("status") != "STOPPED":
            raise GraphQLError(f"StopSchedule {schedule['name']}: {result}")
        stopped.append(schedule["name"])
    return stopped


@contextlib.contextmanager
def running_deployment(tmp: Path) -> Iterator[Deployment]:
    """Webserver and daemon over a fresh instance and storage root in ``tmp``; stopped on exit."""
    shards_dir = tmp / "shards"
    write_shard(shards_dir, SHARD_KEY)
    env = deployment_env(tmp, shards_dir)
    workspace = str(REPO_ROOT / "workspace.yaml")
    port = free_local_port()
    base_url = f"http://127.0.0.1:{port}"
    # Server logs go with the screenshot, so a failed CI run shows why.
    log_dir = artifacts_dir() / "logs"
    with managed_processes() as processes:
        processes.append(
            start_process(
                "webserver",
                [
                    dagster_tool("dagster-webserver"),
                    "-w",
                    workspace,
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                ],
                env=env,
                cwd=REPO_ROOT,
                log_dir=log_dir,
            )
        )
        graphql = DagsterGraphQL(base_url)
        try:
            graphql.wait_until_serving(processes, SERVE_TIMEOUT_S, LOCATION_NAME)
            stopped = stop_all_instigators(graphql)
            processes.append(
                start_process(
                    "daemon",
                    [dagster_tool("dagster-daemon"), "run", "-w", workspace],
                    env=env,
                    cwd=REPO_ROOT,
                    log_dir=log_dir,
                )
            )
            yield Deployment(
                base_url=base_url,
                graphql=graphql,
                storage_root=tmp / "storage",
                shard_key=SHARD_KEY,
                caption_count=len(CAPTIONS),
                stopped_instigators=stopped,
            )
        finally:
            graphql.close()
