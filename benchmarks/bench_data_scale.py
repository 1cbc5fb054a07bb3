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
size within 1.2x of it. Each size starts with an empty cache, so a shard of under 1M rows
(one lookup slice) looks up nothing, while every later slice of a bigger one compacts the
cache and reads it: that lookup is most of the difference. ``--warm-captions N`` first
runs another shard of N captions through both paraphrase steps into the same cache, as
in a pipeline that has paraphrased other shards, so every size's lookups read a real
cache. Arrow's pool is the pipeline's (``arrow_pool``: jemalloc); set
``ARROW_DEFAULT_MEMORY_POOL=mimalloc`` to measure pyarrow's default instead.

Training (``measure_training``, its own process per size): a shard of that many pairs
with image embeddings of the tiny model's width (``memory_probe.write_shard``) is
prepared and trained one epoch on the tiny model (batch 256, 2 loader workers; the
tokenizer is CLIP's, the tower tiny, so the loader is stressed); its peak RSS joins the ratio
and ``data_wait_share`` is the largest share of the loop's wall time spent waiting for
the next micro-batch (goal < 5%).

Run: .venv/bin/python benchmarks/bench_data_scale.py [--sizes 100000,1000000] [--batch-rows 16384]
[--train-max-steps N] [--no-training | --no-stages] [--warm-captions N]
"""

from __future__ import annotations

import argparse
import json
import resource
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
from paraclip_pipeline.storage import STREAM_BATCH_ROWS

STAGES = (RAW_CAPTIONS, STAGE1_PARAPHRASES, STAGE2_PARAPHRASES, FILTERED_PAIRS)
KEY = "laion-bench"
WARM_KEY = "laion-warm"
TRAINING = "training"
LOADER_WORKER = "loader worker"
TRAIN_PROFILE = "tiny-random"
TRAIN_BATCH = 256


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
            arguments.key,
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


def run_training(arguments: argparse.Namespace) -> None:
    """Child process: generate the shard, then prepare + one epoch; print JSON."""
    from paraclip_pipeline.modeling.factory import load_clip
    from paraclip_pipeline.modeling.profiles import get_profile
    from paraclip_pipeline.training.config import TrainConfig
    from paraclip_pipeline.training.loop import train_text_encoder
    from paraclip_pipeline_tests.training.memory_probe import reset_peak, write_shard

    work, profile = Path(arguments.root), get_profile(TRAIN_PROFILE)
    clip = load_clip(profile)
    pairs, embeddings = write_shard(work, arguments.train, clip.embed_dim, clip.model_id)
    del clip
    reset_peak()
    started = time.perf_counter()
    config = TrainConfig(
        batch_size=TRAIN_BATCH,
        epochs=1,
        lr=1e-4,
        checkpoint_every_steps=1 << 30,
        max_steps=arguments.train_max_steps,
    )
    result = train_text_encoder(
        [pairs],
        [embeddings],
        profile=profile,
        config=config,
        output_dir=work / "checkpoint",
        inputs=[],
    )
    print(
        json.dumps(
            {
                "seconds": time.perf_counter() - started,
                "train_s": result.metrics["wall_s"],
                "peak_rss_mb": _peak_rss_mb(),
                # The loader workers (forked, so their resident set starts at the parent's).
                "worker_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                "data_wait_share": result.metrics["data_wait_share"],
                "steps": result.metrics["steps"],
            }
        )
    )


def measure_training(size: int, work: Path, arguments: argparse.Namespace) -> dict[str, float]:
    root = work / f"train-{size}"
    root.mkdir()
    command = [sys.executable, __file__, "--train", str(size), "--root", str(root)]
    if arguments.train_max_steps:
        command += ["--train-max-steps", str(arguments.train_max_steps)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    shutil.rmtree(root, ignore_errors=True)
    if done.returncode != 0:
        raise SystemExit(f"training at {size:,} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(
    stage: str,
    shards: Path,
    root: Path,
    rules: Path,
    arguments: argparse.Namespace,
    key: str = KEY,
) -> dict[str, float]:
    command = [
        sys.executable,
        __file__,
        "--stage",
        stage,
        "--key",
        key,
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


def measure_stages(
    size: int,
    work: Path,
    rules: Path,
    peaks: dict[str, dict[int, float]],
    arguments: argparse.Namespace,
) -> None:
    from paraclip_pipeline_tests.defs.streaming import write_laion_shard

    shards, root = work / f"shards-{size}", work / f"storage-{size}"
    started = time.perf_counter()
    write_laion_shard(shards, KEY, size)
    print(f"{size:,} captions generated in {time.perf_counter() - started:.1f} s")
    if arguments.warm_captions:
        started = time.perf_counter()
        write_laion_shard(shards, WARM_KEY, arguments.warm_captions, seed=1)
        for stage in (RAW_CAPTIONS, STAGE1_PARAPHRASES, STAGE2_PARAPHRASES):
            measure(stage, shards, root, rules, arguments, key=WARM_KEY)
        print(
            f"  cache warmed with another shard's {arguments.warm_captions:,} captions "
            f"(both steps) in {time.perf_counter() - started:.1f} s"
        )
    for stage in STAGES:
        result = measure(stage, shards, root, rules, arguments)
        peaks[stage][size] = result["peak_rss_mb"]
        print(
            f"  {stage:<20} {size / result['seconds']:>9,.0f} rows/s  "
            f"peak RSS {result['peak_rss_mb']:7.1f} MB  ({result['seconds']:.1f} s)"
        )
    shutil.rmtree(shards)
    shutil.rmtree(root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--batch-rows", type=int, default=STREAM_BATCH_ROWS)
    parser.add_argument("--chunk-size", type=int, default=8192)
    parser.add_argument(
        "--train-max-steps",
        type=int,
        help="cap the epoch (the tiny model on a shared CPU: about 0.2 s a step of 256)",
    )
    parser.add_argument(
        "--no-training",
        action="store_true",
        help="the stages alone (a 12M-caption shard's epoch takes hours on a CPU)",
    )
    parser.add_argument(
        "--no-stages",
        action="store_true",
        help="the training half alone (the stages' ratios from a separate run)",
    )
    parser.add_argument(
        "--warm-captions",
        type=int,
        default=0,
        help="paraphrase another shard of this many captions into the cache first, as in a "
        "pipeline that has run other shards (a shard under 1M rows otherwise looks up "
        "an empty cache only)",
    )
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--key", default=KEY, help=argparse.SUPPRESS)
    parser.add_argument("--train", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--shards", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--rules", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.stage:
        run_stage(arguments)
        return
    if arguments.train:
        run_training(arguments)
        return

    from paraclip_pipeline_tests.defs.streaming import rules_without_models

    sizes = sorted(int(size) for size in arguments.sizes.split(","))
    work = Path(tempfile.mkdtemp(prefix="bench-data-scale-"))
    peaks: dict[str, dict[int, float]] = {stage: {} for stage in (*STAGES, TRAINING, LOADER_WORKER)}
    waits: list[float] = []
    try:
        rules = rules_without_models(work)
        for size in sizes:
            if not arguments.no_stages:
                measure_stages(size, work, rules, peaks, arguments)
            if arguments.no_training:
                continue
            trained = measure_training(size, work, arguments)
            peaks[TRAINING][size] = trained["peak_rss_mb"]
            peaks[LOADER_WORKER][size] = trained["worker_peak_rss_mb"]
            waits.append(trained["data_wait_share"])
            trained_rows = trained["steps"] * TRAIN_BATCH
            print(
                f"  {TRAINING:<20} {trained_rows / trained['train_s']:>9,.0f} rows/s  "
                f"peak RSS {trained['peak_rss_mb']:7.1f} MB, loader workers "
                f"{trained['worker_peak_rss_mb']:.1f} MB ({trained['seconds']:.1f} s: prepare, "
                f"then {trained['steps']:.0f} steps in {trained['train_s']:.1f} s, "
                f"waiting for data {trained['data_wait_share']:.1%})"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    smallest, largest = sizes[0], sizes[-1]
    ratios = {
        stage: peaks[stage][largest] / peaks[stage][smallest] for stage in peaks if peaks[stage]
    }
    for stage, ratio in ratios.items():
        print(f"{stage}: peak RSS at {largest:,} / at {smallest:,} = {ratio:.2f}x (goal <= 1.2x)")
    wait = f"{max(waits):.3f}" if waits else "n/a"
    print(f"peak_rss_ratio={max(ratios.values()):.2f} data_wait_share={wait}")


if __name__ == "__main__":
    main()
