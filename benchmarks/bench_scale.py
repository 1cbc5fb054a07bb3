"""The new-shard sensor and ``paraclip lineage`` with 10,000 caption-shard partitions.

(a) ``new_shard_sensor`` ticks against a directory of small JSONL shards and an on-disk
SQLite Dagster instance: the first tick (every shard new), a tick where nothing changed,
and a tick after a few shards were rewritten. Goal: under 5 s per tick.
Baseline: ``discover_shards`` alone (the directory listing every tick must do).

(b) ``lineage.query.trace`` (what ``paraclip lineage`` runs) over a checkpoint manifest
naming every partition, plus the text rendering the CLI prints. Goal: under 2 s.
The manifest carries every shard's chain (written at training time from indexed lookups,
also timed), so the trace reads the event log only for shards asked about.
Baseline: one ``fetch_materializations`` of all filtered_pairs records (what a trace that
walked the event log would pay per asset).

Materialization records are written the way Dagster's SQLite event log writes them to its
index shard, in one transaction per asset instead of two connections per event
(``report_runless_asset_event`` costs ~40 ms an event here: 40,000 events would take half
an hour). Run: ``.venv/bin/python benchmarks/bench_scale.py [--shards N] [--changed K]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")

import dagster as dg
from dagster._core.definitions.data_version import (
    CODE_VERSION_TAG,
    DATA_VERSION_TAG,
    get_input_event_pointer_tag,
)
from dagster._core.events import (
    DagsterEvent,
    DagsterEventType,
    StepMaterializationData,
)
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.sqlalchemy_compat import db_result

from paraclip_pipeline.defs.automation import new_shard_sensor
from paraclip_pipeline.defs.partitions import caption_shards
from paraclip_pipeline.defs.resources import ShardSourceResource
from paraclip_pipeline.lineage.manifest import ShardRows, shard_inputs
from paraclip_pipeline.lineage.query import MANIFEST_NAME, trace
from paraclip_pipeline.sources import discover_shards, shard_content_hash
from paraclip_pipeline.storage import StorageLayout, write_text_atomic

SENSOR_GOAL_S = 5.0
LINEAGE_GOAL_S = 2.0
CAPTIONS_PER_SHARD = 3
PREVIEW_ROWS = 5
RAW, STAGE1, STAGE2, FILTERED = (
    dg.AssetKey("raw_captions"),
    dg.AssetKey("stage1_paraphrases"),
    dg.AssetKey("stage2_paraphrases"),
    dg.AssetKey("filtered_pairs"),
)
Result = TypeVar("Result")


class BenchmarkError(RuntimeError):
    """A measured call returned something other than what the scenario requires."""


def timed(action: Callable[[], Result]) -> tuple[Result, float]:
    started = time.perf_counter()
    result = action()
    return result, time.perf_counter() - started


def shard_key(index: int) -> str:
    return f"bench_{index:05d}"


def write_shard(path: Path, index: int, extra_caption: str | None = None) -> None:
    captions = [f"a photo of scene {index} number {line}" for line in range(CAPTIONS_PER_SHARD)]
    if extra_caption:
        captions.append(extra_caption)
    rows = [
        json.dumps({"id": f"{path.stem}-{line}", "caption": caption})
        for line, caption in enumerate(captions)
    ]
    write_text_atomic("\n".join(rows) + "\n", path)


def preview(rows: int, columns: Sequence[str]) -> dg.MetadataValue:
    """A table the size of the real assets' previews, so records weigh what real ones do."""
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord({name: f"{name} value of preview row {row}" for name in columns})
            for row in range(rows)
        ],
        schema=dg.TableSchema(columns=[dg.TableColumn(name, "string") for name in columns]),
    )


def store_materializations(
    instance: dg.DagsterInstance, materializations: Sequence[dg.AssetMaterialization]
) -> list[int]:
    """Write the index-shard rows ``store_event`` writes, in one transaction; the storage ids."""
    storage = instance.event_log_storage
    now = time.time()
    entries = [
        EventLogEntry(
            user_message="",
            level=logging.INFO,
            job_name="",
            run_id="",
            error_info=None,
            timestamp=now,
            step_key=None,
            dagster_event=DagsterEvent(
                event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value,
                job_name="",
                event_specific_data=StepMaterializationData(materialization),
            ),
        )
        for materialization in materializations
    ]
    storage_ids: list[int] = []
    with storage.index_transaction() as connection:
        for entry in entries:
            with db_result(connection, storage.prepare_insert_event(entry)) as inserted:
                storage_ids.append(int(inserted.inserted_primary_key[0]))
            storage._store_asset_event(connection, entry, storage_ids[-1])
        storage._store_asset_event_tags(connection, entries, storage_ids)
    return storage_ids


def record_step(
    instance: dg.DagsterInstance,
    asset: dg.AssetKey,
    keys: Sequence[str],
    upstream: tuple[dg.AssetKey, Sequence[int]] | None,
    metadata: Mapping[str, object],
) -> list[int]:
    """One materialization per partition, pointing at its upstream one as Dagster records it."""
    materializations = []
    for position, key in enumerate(keys):
        tags = {DATA_VERSION_TAG: f"{asset.to_user_string()}-{key}", CODE_VERSION_TAG: "v1"}
        if upstream is not None:
            upstream_key, upstream_ids = upstream
            tags[get_input_event_pointer_tag(upstream_key)] = str(upstream_ids[position])
        materializations.append(
            dg.AssetMaterialization(asset_key=asset, partition=key, tags=tags, metadata=metadata)
        )
    return store_materializations(instance, materializations)


def sensor_tick(
    instance: dg.DagsterInstance, location: Path, cursor: str | None
) -> tuple[dg.SensorResult, float]:
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"shard_source": ShardSourceResource(location=str(location))},
    )
    result, seconds = timed(lambda: new_shard_sensor(context))
    if not isinstance(result, dg.SensorResult):
        raise BenchmarkError(f"new_shard_sensor returned {type(result).__name__}, not SensorResult")
    return result, seconds


def expect_runs(result: dg.SensorResult, expected: int, tick: str) -> None:
    requested = len(result.run_requests or [])
    if requested != expected:
        raise BenchmarkError(f"{tick}: expected {expected} run requests, got {requested}")


def report_line(label: str, seconds: float, goal_s: float, baseline_s: float) -> str:
    return (
        f"  {label:<34} {seconds:8.3f} s   {seconds / goal_s:5.2f}x goal ({goal_s:.0f} s)   "
        f"{seconds / baseline_s:6.1f}x baseline   {'ok' if seconds < goal_s else 'MISSED'}"
    )


def bench_sensor(
    instance: dg.DagsterInstance, shards_dir: Path, shard_count: int, changed: int
) -> tuple[list[str], dict[str, int]]:
    """Timings of three ticks, and the raw_captions storage id recorded for each shard."""
    location = str(shards_dir)
    _, listing_s = timed(lambda: discover_shards(location))

    first, first_s = sensor_tick(instance, shards_dir, None)
    expect_runs(first, shard_count, "first tick")
    # What the daemon does with the tick's result, and what the requested runs leave behind:
    # the partitions exist and raw_captions records each shard's content hash.
    keys = [shard_key(index) for index in range(shard_count)]
    _, register_s = timed(lambda: instance.add_dynamic_partitions(caption_shards.name, keys))
    hashes = {shard.key: shard_content_hash(shard) for shard in discover_shards(location).shards}
    raw_ids = store_materializations(
        instance,
        [
            dg.AssetMaterialization(
                asset_key=RAW, partition=key, tags={DATA_VERSION_TAG: hashes[key]}
            )
            for key in keys
        ],
    )

    unchanged, unchanged_s = sensor_tick(instance, shards_dir, first.cursor)
    expect_runs(unchanged, 0, "unchanged tick")

    for index in range(changed):
        write_shard(shards_dir / f"{shard_key(index)}.jsonl", index, "a caption added later")
    rewritten, rewritten_s = sensor_tick(instance, shards_dir, unchanged.cursor)
    expect_runs(rewritten, changed, "changed tick")

    lines = [
        f"(a) new_shard_sensor, {shard_count} shards "
        f"(baseline: discover_shards listing {listing_s:.3f} s)",
        report_line(f"first tick ({shard_count} new)", first_s, SENSOR_GOAL_S, listing_s),
        report_line("unchanged tick", unchanged_s, SENSOR_GOAL_S, listing_s),
        report_line(f"tick with {changed} changed", rewritten_s, SENSOR_GOAL_S, listing_s),
        f"  (daemon applying the {shard_count} partition adds: {register_s:.3f} s)",
    ]
    return lines, dict(zip(keys, raw_ids, strict=True))


def bench_lineage(
    instance: dg.DagsterInstance, storage_root: Path, raw_ids: Mapping[str, int]
) -> list[str]:
    keys = sorted(raw_ids)
    shard_count = len(keys)
    common = {"rows": CAPTIONS_PER_SHARD}
    stage1_ids = record_step(
        instance,
        STAGE1,
        keys,
        (RAW, [raw_ids[key] for key in keys]),
        {**common, "preview": preview(PREVIEW_ROWS, ["text", "paraphrase_1", "status_1"])},
    )
    stage2_ids = record_step(
        instance,
        STAGE2,
        keys,
        (STAGE1, stage1_ids),
        {**common, "preview": preview(PREVIEW_ROWS, ["text", "paraphrase_2", "status_2"])},
    )
    filtered_ids = record_step(
        instance,
        FILTERED,
        keys,
        (STAGE2, stage2_ids),
        {
            "rows_in": CAPTIONS_PER_SHARD,
            "rows_kept": CAPTIONS_PER_SHARD,
            "rules_hash": "0" * 64,
            "preview": preview(PREVIEW_ROWS, ["text", "paraphrase_1", "paraphrase_2", "split"]),
        },
    )
    layout = StorageLayout(storage_root)
    checkpoint_dir = layout.checkpoints_dir / "bench-run"
    rows = {key: ShardRows(CAPTIONS_PER_SHARD, CAPTIONS_PER_SHARD) for key in keys}
    inputs, provenance_s = timed(lambda: shard_inputs(instance, rows))
    manifest = {"weights_sha256": "f" * 64, "inputs": inputs}
    write_text_atomic(json.dumps(manifest), checkpoint_dir / MANIFEST_NAME)

    _, fetch_s = timed(
        lambda: instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=FILTERED, storage_ids=filtered_ids),
            limit=shard_count,
        )
    )
    report, trace_s = timed(lambda: trace(str(checkpoint_dir), layout=layout, instance=instance))
    text, render_s = timed(report.to_text)
    untraced = [shard.partition for shard in report.shards if shard.steps[-1].storage_id is None]
    if len(report.shards) != shard_count or untraced:
        raise BenchmarkError(
            f"trace covered {len(report.shards)} shards; {len(untraced)} did not reach "
            f"raw_captions (first: {untraced[:3]})"
        )
    one_shard, one_shard_s = timed(
        lambda: trace(str(checkpoint_dir), layout=layout, instance=instance, shards=[keys[0]])
    )
    if one_shard.shards[0].steps[0].run_id is None and one_shard.shards[0].steps[0].detail == {}:
        raise BenchmarkError("--shard detail did not reach the event log")
    return [
        f"(b) paraclip lineage over {shard_count} partitions "
        f"(baseline: one fetch_materializations of {shard_count} records {fetch_s:.3f} s)",
        f"  manifest provenance at training time (indexed lookups): {provenance_s:.3f} s",
        report_line("trace()", trace_s, LINEAGE_GOAL_S, fetch_s),
        report_line(
            f"trace() + to_text() ({len(text.splitlines())} lines)",
            trace_s + render_s,
            LINEAGE_GOAL_S,
            fetch_s,
        ),
        report_line(
            "trace(shards=[one]) with event-log detail", one_shard_s, LINEAGE_GOAL_S, fetch_s
        ),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=10_000)
    parser.add_argument("--changed", type=int, default=10)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="paraclip-bench-scale-") as tmp:
        root = Path(tmp)
        shards_dir = root / "shards"
        _, write_s = timed(
            lambda: [
                write_shard(shards_dir / f"{shard_key(index)}.jsonl", index)
                for index in range(args.shards)
            ]
        )
        print(f"wrote {args.shards} shards of {CAPTIONS_PER_SHARD} captions in {write_s:.1f} s")
        dagster_home = root / "dagster_home"
        dagster_home.mkdir()
        with dg.DagsterInstance.local_temp(str(dagster_home)) as instance:
            lines, raw_ids = bench_sensor(instance, shards_dir, args.shards, args.changed)
            lines += bench_lineage(instance, root / "storage", raw_ids)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
