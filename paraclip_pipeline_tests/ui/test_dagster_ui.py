"""The Dagster UI used as a person uses it: GraphQL calls the UI makes, then the page itself.

A module-scoped deployment (see conftest) serves the real code location; the tests add the
shard as a dynamic partition, materialize raw_captions + stage1_paraphrases for it, read back
metadata, staleness and partition status, and render the asset graph in headless Chromium.
"""

from __future__ import annotations

import html
import re
import time
from typing import Any
from urllib.parse import urlencode

import pyarrow.parquet as pq
import pytest

from paraclip_pipeline.storage import StorageLayout
from paraclip_pipeline_tests.ui.deployment import (
    LOCATION_NAME,
    REPOSITORY_NAME,
    REPOSITORY_SELECTOR,
    Deployment,
    artifacts_dir,
)
from paraclip_pipeline_tests.ui.harness import CHROMIUM, GraphQLError, chromium_render

pytestmark = pytest.mark.browser

RUN_TIMEOUT_S = 240.0
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}
LAUNCHED_ASSETS = ["raw_captions", "stage1_paraphrases"]
ALL_ASSETS = [
    "raw_captions",
    "stage1_paraphrases",
    "stage2_paraphrases",
    "filtered_pairs",
    "image_embeddings",
    "text_encoder_checkpoint",
    "benchmark_report",
]
# What the UI shows when a page or a GraphQL call breaks.
ERROR_BANNERS = ["Something went wrong", "Error", "Unexpected GraphQL error", "PythonError"]

ASSET_STATE = """
query AssetState($keys: [AssetKeyInput!], $partition: String!) {
  assetNodes(assetKeys: $keys) {
    assetKey { path }
    pools
    staleStatusByPartition(partitions: [$partition])
    assetPartitionStatuses {
      __typename
      ... on DefaultPartitionStatuses {
        materializedPartitions
        unmaterializedPartitions
        failedPartitions
        materializingPartitions
      }
    }
    latestMaterializationByPartition(partitions: [$partition]) {
      runId
      partition
      metadataEntries {
        label
        __typename
        ... on IntMetadataEntry { intValue }
        ... on TextMetadataEntry { text }
      }
    }
  }
}
"""


def add_partition(deployment: Deployment) -> None:
    result = deployment.graphql.execute(
        """
        mutation AddShard($repo: RepositorySelector!, $key: String!) {
          addDynamicPartition(
            repositorySelector: $repo, partitionsDefName: "caption_shards", partitionKey: $key
          ) {
            __typename
            ... on AddDynamicPartitionSuccess { partitionKey }
            ... on PythonError { message }
            ... on DuplicateDynamicPartitionError { partitionName }
          }
        }
        """,
        {"repo": REPOSITORY_SELECTOR, "key": deployment.shard_key},
    )["addDynamicPartition"]
    if result["__typename"] != "AddDynamicPartitionSuccess":
        raise GraphQLError(f"AddShard: {result}")


def launch_materialization(deployment: Deployment, assets: list[str]) -> str:
    """What the UI's 'Materialize' button does for a selection and one partition."""
    result = deployment.graphql.execute(
        """
        mutation Materialize($params: ExecutionParams!) {
          launchRun(executionParams: $params) {
            __typename
            ... on LaunchRunSuccess { run { runId } }
            ... on PythonError { message }
            ... on InvalidSubsetError { message }
            ... on RunConfigValidationInvalid { errors { message } }
          }
        }
        """,
        {
            "params": {
                "selector": {
                    "repositoryLocationName": LOCATION_NAME,
                    "repositoryName": REPOSITORY_NAME,
                    "jobName": "shard_job",
                    "assetSelection": [{"path": [name]} for name in assets],
                    "assetCheckSelection": [],
                },
                "runConfigData": {},
                "executionMetadata": {
                    "tags": [{"key": "dagster/partition", "value": deployment.shard_key}]
                },
            }
        },
    )["launchRun"]
    if result["__typename"] != "LaunchRunSuccess":
        raise GraphQLError(f"Materialize: {result}")
    return result["run"]["runId"]


def run_failure_messages(deployment: Deployment, run_id: str) -> list[str]:
    events = deployment.graphql.execute(
        """
        query RunLogs($runId: ID!) {
          logsForRun(runId: $runId) {
            __typename
            ... on EventConnection {
              events {
                __typename
                ... on MessageEvent { message }
                ... on ErrorEvent { error { message } }
              }
            }
          }
        }
        """,
        {"runId": run_id},
    )["logsForRun"]
    return [
        (event.get("error") or {}).get("message") or event.get("message", "")
        for event in events.get("events", [])
        if "Failure" in event["__typename"] or event.get("error")
    ]


def wait_for_run(deployment: Deployment, run_id: str) -> str:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    status = "UNKNOWN"
    while time.monotonic() < deadline:
        run = deployment.graphql.execute(
            """
            query RunStatus($runId: ID!) {
              runOrError(runId: $runId) { __typename ... on Run { status } }
            }
            """,
            {"runId": run_id},
        )["runOrError"]
        status = run.get("status", run["__typename"])
        if status in FINISHED:
            return status
        time.sleep(1.0)
    raise AssertionError(f"run {run_id} still {status} after {RUN_TIMEOUT_S:.0f} s")


def metadata_value(entry: dict[str, Any]) -> Any:
    return entry.get("intValue", entry.get("text"))


def asset_graph_url(deployment: Deployment) -> str:
    """The global lineage page with every group expanded, as 'Expand all groups' leaves it."""
    nodes = deployment.graphql.execute("query Groups { assetNodes { groupName } }")["assetNodes"]
    # The UI's id for a group of the global graph (see its ?expanded= query parameter).
    groups = sorted({f"global@global:{node['groupName']}" for node in nodes})
    return f"{deployment.base_url}/asset-groups?{urlencode({'expanded': ','.join(groups)})}"


def card_text(page_text: str, asset: str) -> str:
    """The text of one asset's card in the graph: from its name to the next card."""
    start = page_text.find(f"{asset} Latest event")
    assert start >= 0, f"no card for {asset} in: {page_text[:2000]}"
    ends = [page_text.find(f"{other} Latest event", start + 1) for other in ALL_ASSETS]
    return page_text[start : min([end for end in ends if end > start], default=len(page_text))]


def visible_text(dom: str) -> str:
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S | re.I)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))


@pytest.fixture(scope="module")
def materialized(deployment: Deployment) -> str:
    """Add the shard partition and materialize the first two assets for it; the run id."""
    add_partition(deployment)
    run_id = launch_materialization(deployment, LAUNCHED_ASSETS)
    status = wait_for_run(deployment, run_id)
    assert status == "SUCCESS", (
        f"run {run_id} ended {status}: {run_failure_messages(deployment, run_id)}"
    )
    return run_id


def asset_state(deployment: Deployment, names: list[str]) -> dict[str, dict[str, Any]]:
    nodes = deployment.graphql.execute(
        ASSET_STATE,
        {"keys": [{"path": [name]} for name in names], "partition": deployment.shard_key},
    )["assetNodes"]
    return {"/".join(node["assetKey"]["path"]): node for node in nodes}


def test_sensors_and_schedule_are_listed_and_switchable(deployment: Deployment) -> None:
    assert sorted(deployment.stopped_instigators) == [
        "new_shard_sensor",
        "nightly_refresh",
        "paraclip_automation",
        "retrain_policy_sensor",
        "rules_staleness_sensor",
    ]


def test_materialization_metadata_over_graphql(deployment: Deployment, materialized: str) -> None:
    state = asset_state(deployment, LAUNCHED_ASSETS)
    raw = state["raw_captions"]["latestMaterializationByPartition"][0]
    assert raw["runId"] == materialized
    assert raw["partition"] == deployment.shard_key
    metadata = {entry["label"]: metadata_value(entry) for entry in raw["metadataEntries"]}
    assert metadata["rows"] == deployment.caption_count
    assert metadata["flagged_rows"] == 0
    assert metadata["format"] == "jsonl"
    # The rows the UI reports are the rows the IO manager wrote under the storage root.
    written = StorageLayout(deployment.storage_root).partition_file(
        "raw_captions", deployment.shard_key
    )
    assert pq.read_metadata(written).num_rows == deployment.caption_count
    stage1 = state["stage1_paraphrases"]
    assert stage1["latestMaterializationByPartition"][0]["runId"] == materialized
    # The paraphrase steps share the LLM pool that caps concurrent LLM traffic.
    assert stage1["pools"] == ["llm_backend"]
    runs = deployment.graphql.execute(
        "query Runs { runsOrError { ... on Runs { results { runId } } } }"
    )["runsOrError"]["results"]
    # The sensors and the schedule are off: nothing but the test's run was launched.
    assert [run["runId"] for run in runs] == [materialized]


def test_staleness_and_partition_status(deployment: Deployment, materialized: str) -> None:
    state = asset_state(deployment, ["raw_captions", "stage1_paraphrases", "stage2_paraphrases"])
    key = deployment.shard_key
    for name in LAUNCHED_ASSETS:
        assert state[name]["staleStatusByPartition"] == ["FRESH"], name
        statuses = state[name]["assetPartitionStatuses"]
        assert statuses["materializedPartitions"] == [key], name
        assert statuses["failedPartitions"] == [], name
    stage2 = state["stage2_paraphrases"]
    assert stage2["staleStatusByPartition"] == ["MISSING"]
    assert stage2["assetPartitionStatuses"]["unmaterializedPartitions"] == [key]
    assert stage2["latestMaterializationByPartition"] == [None]


def test_asset_graph_page_in_chromium(
    deployment: Deployment, materialized: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium (the CI installs it)")
    screenshot = artifacts_dir() / "asset_graph.png"
    dom = chromium_render(
        asset_graph_url(deployment),
        profile_dir=tmp_path_factory.mktemp("chromium-profile"),
        screenshot=screenshot,
        # Wide enough that the fitted graph shows full asset cards, not zoomed-out labels.
        window="2560,1440",
    )
    (artifacts_dir() / "asset_graph.html").write_text(dom, encoding="utf-8")
    text = visible_text(dom)
    assert "Global asset lineage" in text, text[:2000]
    missing = [name for name in ALL_ASSETS if name not in text]
    assert not missing, f"asset graph lacks {missing}; page text: {text[:2000]}"
    banners = [banner for banner in ERROR_BANNERS if re.search(rf"\b{banner}\b", text)]
    assert not banners, f"asset graph shows {banners}; page text: {text[:2000]}"
    # Each card shows the partition fill the run left: the page agrees with GraphQL.
    for name in LAUNCHED_ASSETS:
        assert "Partitions 100% filled" in card_text(text, name), card_text(text, name)
    assert "Partitions 0% filled" in card_text(text, "stage2_paraphrases")
    assert screenshot.stat().st_size > 20_000, "screenshot is too small to show the graph"
