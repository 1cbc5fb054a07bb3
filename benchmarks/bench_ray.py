"""The five per-shard steps over many tiny shards: in-process vs a two-node local Ray cluster.

Writes ``--shards`` JSONL shards of ``--captions`` distinct captions each (no caption repeats,
so no shard is a paraphrase-cache hit for another), then runs ingest, stage 1, stage 2,
filtering (the repository's rules, MiniLM meaning rule included) and image embeddings
(``tiny-random`` tower; the shards have no images) twice, each into its own storage root with
a cold cache:

- **in-process**: the plain step functions (``shard_steps.STEPS``) in a loop, one shard after
  another, each paraphrase shard building its backend as the in-process asset does. This is
  the fair baseline: the same functions the Ray path runs, with no Dagster on either side. The
  ``shard_job`` per partition (``paraclip demo``) would add Dagster's run bookkeeping per shard
  (about 1 s, bench_incremental), which batching partitions into one run removes whatever the
  engine, so charging it to in-process would flatter Ray.
- **Ray**: ``run_step_on_ray`` per step over all shards (one Ray Data job per step, as the
  multi-asset does for a batch of partitions) on ``.ci/ray-cluster``'s head + second node
  (2 CPUs each), the paraphrase steps in the actor pool.

The paraphraser is the offline WordNet rewriter, the default backend: real per-caption CPU
work (about 38 captions/s in stage 1, bench_wordnet_paraphrase) that parallelises, unlike the
fake server's sleeps. The cluster's start-up and the driver's connection are timed apart.
Scheduling overhead per shard = (Ray time - in-process time) / shards, per step and overall;
on a machine with fewer cores than the cluster's 4 CPUs it includes the lost parallelism.
On a shared machine wall times follow the others' load, so the load average of each phase
and the in-process CPU time are printed too: four Ray worker processes get a larger share
of a contended machine than one loop (measured, 64 shards: 84 s on Ray vs 283 s in-process,
whose CPU time was 153 s, at a load of 9-11 on 2 cores; 16 shards at a load of 7-10: 1.12x).
Run: ``.venv/bin/python benchmarks/bench_ray.py [--shards 64] [--captions 20]``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from paraclip_pipeline.distributed.shard_steps import STEP_ORDER, StepOptions, run_step_safely
from paraclip_pipeline.settings import REPO_ROOT

CLUSTER_SCRIPT = REPO_ROOT / ".ci" / "ray-cluster"
ADJECTIVES = ["red", "small", "old", "happy", "wet", "bright", "quiet", "wooden"]
SUBJECTS = ["dog", "cat", "horse", "boat", "kite", "bicycle", "child", "chef", "bird", "train"]
ACTIONS = ["resting", "waiting", "moving slowly", "standing alone"]
PLACES = ["in a park", "on a beach", "near a lake", "in a city street", "under a bridge"]


def write_shards(directory: Path, shards: int, captions: int) -> list[str]:
    """``shards`` JSONL shards of ``captions`` distinct captions, none repeated across shards."""
    combos = list(itertools.product(ADJECTIVES, SUBJECTS, ACTIONS, PLACES))
    if shards * captions > len(combos):
        raise SystemExit(f"at most {len(combos)} distinct captions: lower --shards or --captions")
    texts = [
        f"a {a} {s} {act} {p}" for a, s, act, p in random.Random(0).sample(combos, k=len(combos))
    ]
    directory.mkdir(parents=True)
    keys = []
    for number in range(shards):
        key = f"shard-{number:03d}"
        rows = [
            {"id": f"{key}-{i}", "caption": texts[number * captions + i]} for i in range(captions)
        ]
        (directory / f"{key}.jsonl").write_text("\n".join(map(json.dumps, rows)) + "\n")
        keys.append(key)
    return keys


def options_for(root: Path, location: Path) -> StepOptions:
    return StepOptions(
        storage_root=str(root),
        batch_rows=1 << 16,
        location=str(location),
        image_root=None,
        max_caption_chars=2000,
        paraphraser={"backend": "wordnet"},
        rules_path=str(REPO_ROOT / "data" / "filter_rules.yaml"),
        clip_profile="tiny-random",
        clip_device="cpu",
    )


def check(step: str, records: list[dict]) -> None:
    failed = [f"{r['shard']}: {r['error']}" for r in records if r["error"]]
    if failed:
        raise SystemExit(f"{step}: {len(failed)} shard(s) failed, first: {failed[0]}")


def run_in_process(keys: list[str], options: StepOptions) -> tuple[dict, dict]:
    """Wall and CPU seconds per step: on a shared machine the CPU time is the steps' own cost."""
    times, cpu = {}, {}
    for step in STEP_ORDER:
        started, cpu_started = time.perf_counter(), time.process_time()
        check(step, [run_step_safely(step, key, options) for key in keys])
        times[step] = time.perf_counter() - started
        cpu[step] = time.process_time() - cpu_started
    return times, cpu


def run_on_ray(keys: list[str], options: StepOptions, address: str) -> dict[str, float]:
    from paraclip_pipeline.distributed.ray_shards import run_step_on_ray

    times = {}
    for step in STEP_ORDER:
        started = time.perf_counter()
        check(step, run_step_on_ray(step, keys, options, address=address))
        times[step] = time.perf_counter() - started
    return times


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cluster(action: str, state: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        [str(CLUSTER_SCRIPT), action, str(state)], env=env, capture_output=True, text=True
    )
    if done.returncode:
        logs = "".join(log.read_text()[-1500:] for log in sorted(state.glob("*.log")))
        raise SystemExit(f"ray-cluster {action} failed ({done.returncode}): {done.stderr}{logs}")
    return done.stdout.strip()


def same_outputs(first: Path, second: Path) -> bool:
    files = sorted(path.relative_to(first) for path in (first / "assets").rglob("*.parquet"))
    return bool(files) and all(
        (first / name).read_bytes() == (second / name).read_bytes() for name in files
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=64)
    parser.add_argument("--captions", type=int, default=20, help="captions per shard")
    args = parser.parse_args(argv)
    try:
        import ray
        import ray.data
    except ImportError:
        print(
            "bench_ray: skipped, the optional `ray` extra is not installed (pip install '.[ray]')"
        )
        return 0
    logging.getLogger("ray").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="paraclip-bench-ray-") as tmp:
        root = Path(tmp)
        keys = write_shards(root / "shards", args.shards, args.captions)
        load = {"in-process": os.getloadavg()[0]}
        local, local_cpu = run_in_process(keys, options_for(root / "local", root / "shards"))
        load["in-process"] = max(load["in-process"], os.getloadavg()[0])

        env = {
            **os.environ,
            "PARACLIP_RAY_PORT": str(free_port()),
            "PARACLIP_RAY_DASHBOARD_PORT": str(free_port()),
        }
        # Its own short directory: Ray's Unix socket paths under it must stay < 108 bytes.
        state = Path(tempfile.mkdtemp(prefix="pcray-", dir="/tmp"))
        started = time.perf_counter()
        try:
            address = cluster("start", state, env)
            startup_s = time.perf_counter() - started
            started = time.perf_counter()
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
            ray.data.DataContext.get_current().enable_progress_bars = False
            connect_s = time.perf_counter() - started
            nodes = sum(node["Alive"] for node in ray.nodes())
            load["Ray"] = os.getloadavg()[0]
            on_ray = run_on_ray(keys, options_for(root / "ray", root / "shards"), address)
            load["Ray"] = max(load["Ray"], os.getloadavg()[0])
        finally:
            ray.shutdown()
            if not (state / "pids").exists():  # a start that failed midway recorded no PIDs
                found = subprocess.run(["pgrep", "-f", "--", f"{state}/"], capture_output=True)
                state.mkdir(parents=True, exist_ok=True)
                (state / "pids").write_bytes(found.stdout)
            cluster("stop", state, env)
            shutil.rmtree(state, ignore_errors=True)
        identical = same_outputs(root / "local", root / "ray")

    shards = len(keys)
    print(
        f"{shards} shards x {args.captions} captions, WordNet paraphraser, tiny-random tower; "
        f"Ray: {nodes} nodes x 2 CPUs on {os.cpu_count()} cores"
    )
    print(f"cluster start-up (head + node) {startup_s:6.1f} s   driver connect {connect_s:5.1f} s")
    print(
        "1-min load average (max of start, end): "
        + ", ".join(f"{phase} {value:.1f}" for phase, value in load.items())
        + f" on {os.cpu_count()} cores; in-process CPU time is what the steps cost unshared"
    )
    print(
        f"{'step':<20} {'in-process':>11} {'(CPU)':>8} {'Ray':>9} {'Ray/in-proc':>12}"
        f" {'overhead/shard':>15}"
    )
    for step in [*STEP_ORDER, "all steps"]:
        a = sum(local.values()) if step == "all steps" else local[step]
        b = sum(on_ray.values()) if step == "all steps" else on_ray[step]
        c = sum(local_cpu.values()) if step == "all steps" else local_cpu[step]
        print(
            f"{step:<20} {a:10.1f}s {c:7.1f}s {b:8.1f}s {b / a:11.2f}x"
            f" {(b - a) / shards * 1000:12.0f} ms"
        )
    print(f"same output files in-process and on Ray: {identical}")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
