"""The co_captions backend over a whole caption file: time, statuses, and what the filter
rules keep (all rules in order, and each rule alone on the answered rows).

Human co-captions of one image differ a lot in wording, and some describe different parts
of the scene, so the copy / lexical_change / meaning rules are measured one by one.
Run: .venv/bin/python benchmarks/bench_co_captions.py [--captions FILE.jsonl] [--rules FILE]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import tempfile
import time
from pathlib import Path

import pyarrow as pa
import yaml

from paraclip_pipeline import schema
from paraclip_pipeline.filtering.apply import apply_filter_rules
from paraclip_pipeline.filtering.rules import load_rules
from paraclip_pipeline.filtering.rules.rules_file import parse_rules
from paraclip_pipeline.modeling.sentence_encoder import shared_sentence_encoder
from paraclip_pipeline.paraphrase.backends import build_backend
from paraclip_pipeline.paraphrase.backends.co_captions import caption_groups
from paraclip_pipeline.paraphrase.config import CO_CAPTIONS, ParaphraserConfig
from paraclip_pipeline.paraphrase.engine import run_paraphrase_stage
from paraclip_pipeline.sources import find_shard, read_shard_checked

COCO = "/work/shared/data/captions/coco_val2017/captions.jsonl"
RULES = Path(__file__).resolve().parents[1] / "data" / "filter_rules.yaml"
SINGLE_RULES = ("copy", "round_trip", "lexical_change", "language", "meaning_kept")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--captions", default=COCO)
    parser.add_argument("--rules", type=Path, default=RULES)
    args = parser.parse_args()
    path = Path(args.captions)
    raw = read_shard_checked(find_shard(str(path.parent), path.stem)).table
    config = ParaphraserConfig(backend=CO_CAPTIONS)
    with tempfile.TemporaryDirectory() as cache_dir:
        started = time.perf_counter()
        groups = caption_groups(raw)
        backend = build_backend(config, caption_groups=groups)
        rows = raw.select(list(schema.STAGE1_INPUT_COLUMNS))
        stage1 = run_paraphrase_stage(
            rows, stage=1, config=config, cache_dir=Path(cache_dir), backend=backend
        )
        stage2 = run_paraphrase_stage(
            stage1.table, stage=2, config=config, cache_dir=Path(cache_dir), backend=backend
        )
        wall = time.perf_counter() - started
        again = time.perf_counter()
        rerun = run_paraphrase_stage(
            rows, stage=1, config=config, cache_dir=Path(cache_dir), backend=backend
        )
        rerun_s = time.perf_counter() - again
    pairs = stage2.table
    print(f"{raw.num_rows} captions, {len(groups)} groups of >= 3; stage 1 + 2: {wall:.2f} s")
    print(
        f"rerun of stage 1: {rerun.stats.cache_hits} cache hits, {rerun.stats.calls} calls, "
        f"{rerun_s:.2f} s"
    )
    for column in (schema.STATUS_1, schema.STATUS_2):
        print(column, pairs.column(column).value_counts().to_pylist())
    extra = raw.select([schema.CAPTION_ID, schema.NSFW, schema.INPUT_ISSUE])
    pairs = pairs.join(extra, schema.CAPTION_ID, join_type="left outer").sort_by(schema.CAPTION_ID)
    encoder = shared_sentence_encoder()
    started = time.perf_counter()
    outcome = apply_filter_rules(pairs, load_rules(args.rules), encoder)
    print(
        f"all rules ({args.rules.name}): kept {len(outcome.kept)} of {len(pairs)} "
        f"({time.perf_counter() - started:.1f} s); first rejecting rule: "
        f"{ {k: v for k, v in outcome.drop_counts.items() if v} }"
    )
    answered = pairs.filter(
        pa.compute.and_(
            pa.compute.equal(pairs[schema.STATUS_1], "ok"),
            pa.compute.equal(pairs[schema.STATUS_2], "ok"),
        )
    )
    document = yaml.safe_load(args.rules.read_text(encoding="utf-8"))
    for name in SINGLE_RULES:
        alone = {**document, "rules": [r for r in document["rules"] if r["name"] == name]}
        alone["pass_rate"] = {"min": 0.0, "max": 1.0}
        only = apply_filter_rules(answered, parse_rules(alone, args.rules), encoder)
        print(f"{name} alone rejects {only.drop_counts[name]} of {len(answered)} answered pairs")


if __name__ == "__main__":
    main()
