"""The issue-13 scenario against the real daemon (``dagster dev``: sensor + automation).

Three good shards, then bad files, an identical refilter, a rules edit, then the bad
files removed. Nothing is launched by hand except the identical refilter and the code
location reload a rules edit needs; everything else is the sensor and automation.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from paraclip_pipeline.asset_names import FILTERED_PAIRS, TEXT_ENCODER_CHECKPOINT
from paraclip_pipeline.defs.partitions import caption_shards
from paraclip_pipeline.lineage.shard_status import CHECKS_FAILED, QUARANTINED, shard_statuses
from paraclip_pipeline.settings import REPO_ROOT
from paraclip_pipeline_tests.defs.support import SHARD_CAPTIONS, TINY_TRAINING
from paraclip_pipeline_tests.ui.deployment import (
    LOCATION_NAME,
    artifacts_dir,
    deployment_env,
    free_local_port,
)
from paraclip_pipeline_tests.ui.harness import (
    DagsterGraphQL,
    dagster_tool,
    managed_processes,
    start_process,
)

pytestmark = pytest.mark.slow

# Eight more captions a shard: automation may train on the first shards built, and under
# load two of the fixture's small shards once left one train row, so that training run
# failed. With these, the scenario passed in both full runs since (not a proof for every
# subset: the filter decides how many rows each shard keeps).
MORE_CAPTIONS = [
    "a black dog catching a frisbee in the air",
    "a bowl of soup on a wooden kitchen table",
    "a train crossing a long stone bridge",
    "a little boy riding a tricycle on the sidewalk",
    "a pile of oranges at a fruit stand",
    "a sailboat on the ocean at sunset",
    "a woman walking a dog along the river",
    "a giraffe eating leaves from a tall tree",
    "a tall clock tower in the middle of a town square",
    "a man fixing a flat tire on his car",
    "a group of sheep standing in a green pasture",
    "a laptop and a phone on an office desk",
    "a pizza with mushrooms and olives on a tray",
    "an airplane flying low over the rooftops",
    "a couple sitting on a bench under a tree",
    "a bus stopped at a red traffic light",
    "a grey kitten playing with a ball of yarn",
    "a surfer riding a big wave near the shore",
    "a child eating ice cream in the park",
    "a vase of red roses on a windowsill",
    "an elephant walking through tall dry grass",
    "a bakery window full of fresh bread",
    "a skier going down a snowy slope",
    "a fire truck parked in front of a station",
]
GOOD = {"good-a": SHARD_CAPTIONS["shard-a"], "good-b": SHARD_CAPTIONS["shard-b"]}
GOOD["good-c"] = [caption.replace("a ", "one ", 1) for caption in SHARD_CAPTIONS["shard-b"]]
GOOD = {key: [*captions, *MORE_CAPTIONS[i::3]] for i, (key, captions) in enumerate(GOOD.items())}
QUARANTINED_FILES = {
    "broken.jsonl": b'{"caption": "a dog"}\n{"caption": \n',
    "empty.jsonl": b"\n  \n",
    "notparquet.parquet": b"PAR1 this is not parquet PAR1",
}
LATIN1 = "latin1"  # ingests, but every caption is undecodable: pass rate 0.0, check fails
STAGE_TIMEOUT_S = 900.0
SETTLE_S = 75.0  # two automation ticks with nothing in flight
ACTIVE = {
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
}


def _write_jsonl(path: Path, captions: list[str]) -> None:
    lines = [json.dumps({"id": f"{path.stem}-{i}", "caption": c}) for i, c in enumerate(captions)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _add_bad_files(shards: Path) -> None:
    for name, data in QUARANTINED_FILES.items():
        (shards / name).write_bytes(data)
    pq.write_table(pa.table({"caption": ["a renamed column"]}), shards / "renamed.parquet")
    latin1 = b"".join(b'{"caption": "caf\xe9 au lait number %d"}\n' % i for i in range(6))
    (shards / f"{LATIN1}.jsonl").write_bytes(latin1)


class Scenario:
    def __init__(self, instance: dg.DagsterInstance, processes: list) -> None:
        self.instance = instance
        self.processes = processes

    def wait(self, what: str, done: Callable[[], bool], timeout_s: float = STAGE_TIMEOUT_S):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for process in self.processes:
                process.ensure_alive()
            if done():
                return
            time.sleep(3)
        raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")

    def settle(self) -> None:
        """Until no run has been queued or running for SETTLE_S."""
        quiet_since = [time.monotonic()]

        def quiet() -> bool:
            if self.instance.get_runs(dg.RunsFilter(statuses=list(ACTIVE)), limit=1):
                quiet_since[0] = time.monotonic()
            return time.monotonic() - quiet_since[0] >= SETTLE_S

        self.wait("the daemon to settle", quiet)

    def checkpoints(self) -> list[dict]:
        records = self.instance.fetch_materializations(
            dg.AssetKey(TEXT_ENCODER_CHECKPOINT), limit=100
        ).records
        return [
            json.loads(
                (Path(str(r.asset_materialization.metadata["checkpoint_dir"].value)))
                .joinpath("manifest.json")
                .read_text(encoding="utf-8")
            )
            for r in records
        ]

    def partitions(self) -> set[str]:
        return set(self.instance.get_dynamic_partitions(caption_shards.name))


def _reload(graphql: DagsterGraphQL) -> None:
    graphql.execute(
        """
        mutation Reload($name: String!) {
          reloadRepositoryLocation(repositoryLocationName: $name) { __typename }
        }
        """,
        {"name": LOCATION_NAME},
    )


def _trained_shards(manifest: dict) -> set[str]:
    return {item["partition"] for item in manifest["inputs"]}


def test_bad_shards_rules_edit_and_removal_keep_automation_going(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shards = tmp_path / "shards"
    shards.mkdir()
    for key, captions in GOOD.items():
        _write_jsonl(shards / f"{key}.jsonl", captions)
    rules_path = tmp_path / "filter_rules.yaml"
    shutil.copy(REPO_ROOT / "data" / "filter_rules.yaml", rules_path)
    train_path = tmp_path / "train.yaml"
    train_path.write_text(yaml.safe_dump(TINY_TRAINING), encoding="utf-8")
    env = deployment_env(tmp_path, shards)
    env.update(
        {
            "PARACLIP_FILTER_RULES": str(rules_path),
            # Retrain after every changed shard (the default batches three or waits a night).
            "PARACLIP_RETRAIN_POLICY": "eager",
            "PARACLIP_TRAIN_CONFIG": str(train_path),
            "PARACLIP_STS_DIR": "",
            "PARACLIP_EVAL_DATA": "",
        }
    )
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    port = free_local_port()
    command = [dagster_tool("dagster"), "dev", "-w", str(REPO_ROOT / "workspace.yaml")]
    command += ["-h", "127.0.0.1", "-p", str(port)]
    with managed_processes() as processes, dg.DagsterInstance.get() as instance:
        processes.append(
            start_process(
                "dagster-dev", command, env=env, cwd=REPO_ROOT, log_dir=artifacts_dir() / "ops"
            )
        )
        graphql = DagsterGraphQL(f"http://127.0.0.1:{port}")
        graphql.wait_until_serving(processes, 300.0, LOCATION_NAME)
        scenario = Scenario(instance, processes)

        # 1. Three good shards: registered, built and trained on by automation alone.
        # (A shard that finishes first may be trained on alone; one on all three must follow.)
        scenario.wait(
            "a checkpoint of the three good shards",
            lambda: any(_trained_shards(m) == set(GOOD) for m in scenario.checkpoints()),
        )
        scenario.settle()
        trained = len(scenario.checkpoints())

        # 2. Bad files: quarantined, the rest keeps running, no retrain (inputs unchanged).
        _add_bad_files(shards)
        bad = {"broken", "empty", "notparquet", "renamed", LATIN1}
        scenario.wait("the bad shards to register", lambda: bad <= scenario.partitions())
        scenario.settle()
        statuses = shard_statuses(instance, sorted(bad), None)
        assert {k for k, s in statuses.items() if s.status == QUARANTINED} == bad - {LATIN1}
        assert statuses[LATIN1].status == CHECKS_FAILED
        assert len(scenario.checkpoints()) == trained

        # 3. An identical refilter of a good shard retrains nothing.
        from paraclip_pipeline.definitions import build_defs

        refilter = (
            build_defs()
            .resolve_job_def("shard_job")
            .execute_in_process(
                partition_key="good-a",
                instance=instance,
                asset_selection=[dg.AssetKey(FILTERED_PAIRS)],
            )
        )
        assert refilter.success
        scenario.settle()
        assert len(scenario.checkpoints()) == trained

        # 4. A rules edit (half the captions in the test split instead of a quarter: rows
        # change split, pass rates do not): refiltered and retrained. (Tightening
        # caption_length to 8 words instead pushed good-b and good-c below the pass-rate
        # bound: correctly quarantined.)
        rules = yaml.safe_load(rules_path.read_text(encoding="utf-8"))
        rules["split"]["test_fraction"] = 0.5
        rules_path.write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
        _reload(graphql)
        scenario.wait(
            "a checkpoint after the rules edit", lambda: len(scenario.checkpoints()) > trained
        )
        scenario.settle()
        newest = scenario.checkpoints()[0]
        assert _trained_shards(newest) == set(GOOD)
        assert {item["partition"] for item in newest["excluded"]} == bad
        trained = len(scenario.checkpoints())

        # 5. Bad files removed: their partitions retired, nothing retrains.
        for path in shards.iterdir():
            if path.stem in bad:
                path.unlink()
        scenario.wait("the bad partitions to retire", lambda: scenario.partitions() == set(GOOD))
        scenario.settle()
        assert len(scenario.checkpoints()) == trained

        # No quarantined shard ever trained; no run failed (the Latin-1 shard's failed
        # checks quarantine it without failing its run).
        assert all(not (_trained_shards(m) & bad) for m in scenario.checkpoints())
        failed = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
        assert [run.run_id for run in failed] == []
