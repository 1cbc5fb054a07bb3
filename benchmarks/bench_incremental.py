"""Incremental re-materialization after a filter-rules edit vs the full pipeline, on the demo.

Runs the whole graph on the bundled demo shards in a temporary storage root (cold
paraphrase cache), edits one threshold in a copy of the rules file, lets Dagster's
automation decide what is due, runs exactly that, and compares wall times measured in
this one process. Also asserts that the rules edit made no paraphrase-backend call.

Goal: incremental rerun <= 5% of the full pipeline time (per-shard work; the ratio with
retraining and the report included is printed too, as both pipelines share those).
Run: ``.venv/bin/python benchmarks/bench_incremental.py [--no-report]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import dagster as dg
import yaml

from paraclip_pipeline.definitions import build_defs
from paraclip_pipeline.defs.partitions import caption_shards
from paraclip_pipeline.paraphrase import engine
from paraclip_pipeline.settings import Settings
from paraclip_pipeline.sources import discover_shards

GOAL = 0.05


def timed_runs(
    instance: dg.DagsterInstance, runs: list[tuple[dg.JobDefinition, str | None]]
) -> float:
    started = time.perf_counter()
    for job, partition in runs:
        result = job.execute_in_process(partition_key=partition, instance=instance)
        if not result.success:
            raise SystemExit(f"{job.name} {partition or ''} failed")
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-report", action="store_true", help="train, but skip the report")
    args = parser.parse_args(argv)
    logging.getLogger("dagster").setLevel(logging.WARNING)
    demo = Settings.from_env()
    calls: list = []
    real_build = engine.build_backend

    def counting_build(config):
        backend = real_build(config)
        calls.append(backend)
        return backend

    engine.build_backend = counting_build
    with tempfile.TemporaryDirectory(prefix="paraclip-bench-incremental-") as tmp:
        root = Path(tmp)
        rules_path = root / "filter_rules.yaml"
        shutil.copy(demo.filter_rules_path, rules_path)
        settings = Settings(
            **{**demo.__dict__, "storage_root": root / "storage", "filter_rules_path": rules_path}
        )
        (root / "home").mkdir()
        with dg.instance_for_test(temp_dir=str(root / "home")) as instance:
            keys = [shard.key for shard in discover_shards(settings.shards_location).shards]
            instance.add_dynamic_partitions(caption_shards.name, keys)
            defs = build_defs(settings)
            shard_job = defs.resolve_job_def("shard_job")
            training = defs.resolve_job_def("training_job")
            if args.no_report:
                training = training.get_subset(
                    asset_selection={dg.AssetKey("text_encoder_checkpoint")}
                )
            full_shards_s = timed_runs(instance, [(shard_job, key) for key in keys])
            full_training_s = timed_runs(instance, [(training, None)])
            baseline_tick = dg.evaluate_automation_conditions(defs=defs, instance=instance)
            calls_before = sum(backend.calls for backend in calls)

            rules = yaml.safe_load(rules_path.read_text())
            for rule in rules["rules"]:
                if rule["name"] == "caption_length":
                    rule["max_tokens"] = rule.get("max_tokens", 15) + 5
            rules_path.write_text(yaml.safe_dump(rules, sort_keys=False))
            edited = build_defs(settings)
            tick = dg.evaluate_automation_conditions(
                defs=edited, instance=instance, cursor=baseline_tick.cursor
            )
            due = sorted(tick.get_requested_partitions(dg.AssetKey("filtered_pairs")))
            others = {
                key.to_user_string()
                for key in edited.resolve_asset_graph().get_all_asset_keys()
                if key != dg.AssetKey("filtered_pairs") and tick.get_num_requested(key)
            }
            refilter = edited.resolve_job_def("shard_job").get_subset(
                asset_selection={dg.AssetKey("filtered_pairs")}
            )
            refilter_s = timed_runs(instance, [(refilter, key) for key in due])
            retrain = edited.resolve_job_def("training_job")
            if args.no_report:
                retrain = retrain.get_subset(
                    asset_selection={dg.AssetKey("text_encoder_checkpoint")}
                )
            retrain_s = timed_runs(instance, [(retrain, None)])
            new_calls = sum(backend.calls for backend in calls) - calls_before

    full_s = full_shards_s + full_training_s
    incremental_s = refilter_s + retrain_s
    print(
        f"demo: {len(keys)} shards; after the rules edit automation requested filtered_pairs {due}"
    )
    print(f"  other assets requested on that tick: {sorted(others) or 'none'}")
    print(f"  paraphrase backend calls caused by the edit: {new_calls}")
    print(f"full per-shard pipeline (cold cache)   {full_shards_s:8.1f} s")
    print(
        f"refilter after the rules edit          {refilter_s:8.1f} s   "
        f"{refilter_s / full_shards_s:6.1%} of full  (goal <= {GOAL:.0%}: "
        f"{'ok' if refilter_s / full_shards_s <= GOAL else 'MISSED'})"
    )
    label = "train" if args.no_report else "train + report"
    print(f"full {label:<20}            {full_training_s:8.1f} s")
    print(
        f"whole graph: full {full_s:.1f} s, incremental {incremental_s:.1f} s "
        f"({incremental_s / full_s:.1%}; training and report are rerun by both)"
    )
    if new_calls or others:
        print("UNEXPECTED: the rules edit reached upstream of filtered_pairs")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
