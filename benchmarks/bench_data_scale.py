"""Per-shard stages at LAION scale: peak memory per stage must not grow with the shard.

Synthetic LAION-style Parquet shards (``--sizes``, default 100k and 1M captions; 5M
works, given the disk) go through raw_captions -> stage1_paraphrases ->
stage2_paraphrases -> filtered_pairs, the real Dagster assets and IO manager, each stage
in its own Python process so its peak RSS (``ru_maxrss``) is its own. Two swaps, for
scale: the offline WordNet rewriter (about 40 captions/s) is replaced by
``CheapRewriter`` (a deterministic word rewrite, microseconds a caption), and the two
model rules (MiniLM meaning, langid language) are off; both judge each row alone, in
batches, so they add time per row, not memory per shard. Answers are committed to the
cache every 8,192 (``--chunk-size``) instead of 64, so the run measures the stages,
not 15,000 fsyncs.

Baseline (same run): each stage's peak RSS at the smallest size. Goal: at the largest
size within 1.2x of it. Training streams in a later step (issue 14), so the last line's
``data_wait_share`` is ``n/a``.

Run: .venv/bin/python benchmarks/bench_data_scale.py [--sizes 100000,1000000] [--batch-rows 65536]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from paraclip_pipeline.asset_names import (
    FILTERED_PAIRS,
    RAW_CAPTIONS,
    STAGE1_PARAPHRASES,
    STAGE2_PARAPHRASES,
)

STAGES = (RAW_CAPTIONS, STAGE1_PARAPHRASES, STAGE2_PARAPHRASES, FILTERED_PAIRS)
KEY = "laion-bench"


def _peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM, kB), reset by exec unlike ru_maxrss."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def run_stage(arguments: argparse.Namespace) -> None:
    """Child process: materialise one stage (upstream read from storage), print JSON."""
    import dagster as dg

    from paraclip_pipeline_tests.defs.streaming import materialize_stages, use_cheap_rewriter

    use_cheap_rewriter()
    root = Path(arguments.root)
    with dg.instance_for_test() as instance:
        started = time.perf_counter()
        result = materialize_stages(
            Path(arguments.shards),
            root,
            KEY,
            arguments.batch_rows,
            Path(arguments.rules),
            instance,
            only=arguments.stage,
            chunk_size=arguments.chunk_size,
        )
        seconds = time.perf_counter() - started
    assert result.success
    peak_mb = _peak_rss_mb()
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_mb}))


def measure(
    stage: str, shards: Path, root: Path, rules: Path, arguments: argparse.Namespace
) -> dict[str, float]:
    command = [
        sys.executable,
        __file__,
        "--stage",
        stage,
        "--shards",
        str(shards),
        "--root",
        str(root),
        "--rules",
        str(rules),
        "--batch-rows",
        str(arguments.batch_rows),
        "--chunk-size",
        str(arguments.chunk_size),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{stage} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--batch-rows", type=int, default=1 << 16)
    parser.add_argument("--chunk-size", type=int, default=8192)
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--shards", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--rules", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.stage:
        run_stage(arguments)
        return

    from paraclip_pipeline_tests.defs.streaming import rules_without_models, write_laion_shard

    sizes = sorted(int(size) for size in arguments.sizes.split(","))
    work = Path(tempfile.mkdtemp(prefix="bench-data-scale-"))
    peaks: dict[str, dict[int, float]] = {stage: {} for stage in STAGES}
    try:
        rules = rules_without_models(work)
        for size in sizes:
            shards, root = work / f"shards-{size}", work / f"storage-{size}"
            started = time.perf_counter()
            write_laion_shard(shards, KEY, size)
            print(f"{size:,} captions generated in {time.perf_counter() - started:.1f} s")
            for stage in STAGES:
                result = measure(stage, shards, root, rules, arguments)
                peaks[stage][size] = result["peak_rss_mb"]
                print(
                    f"  {stage:<20} {size / result['seconds']:>9,.0f} rows/s  "
                    f"peak RSS {result['peak_rss_mb']:7.1f} MB  ({result['seconds']:.1f} s)"
                )
            shutil.rmtree(shards)
            shutil.rmtree(root)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    smallest, largest = sizes[0], sizes[-1]
    ratios = {stage: peaks[stage][largest] / peaks[stage][smallest] for stage in STAGES}
    for stage, ratio in ratios.items():
        print(f"{stage}: peak RSS at {largest:,} / at {smallest:,} = {ratio:.2f}x (goal <= 1.2x)")
    print(f"peak_rss_ratio={max(ratios.values()):.2f} data_wait_share=n/a")


if __name__ == "__main__":
    main()
