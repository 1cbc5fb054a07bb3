"""Filter throughput: lexical rules on 1M synthetic pairs, meaning rule vs the raw encoder.

Prints pairs/s for the vectorised lexical rules (goal >= 1M pairs/s on 2 cores) and their
ratio against a plain Python loop doing the same checks on a subsample, then the meaning
rule's throughput as a share of the raw encoder's on the same texts (goal >= 90%).
Run: ``HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_filtering.py [--pairs N]``.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import torch

from paraclip_pipeline import schema
from paraclip_pipeline.filtering.apply import apply_filter_rules
from paraclip_pipeline.filtering.rules import (
    CaptionLengthRule,
    CopyRule,
    DedupRule,
    LexicalChangeRule,
    NsfwRule,
    ParaphraseLengthRule,
    ParaphraseStatusRule,
    PromptLeftoverRule,
    RuleSet,
    load_rules,
)
from paraclip_pipeline.filtering.semantic import SentenceEncoder

RULES_FILE = Path(__file__).resolve().parents[1] / "data" / "filter_rules.yaml"
SUBJECTS = ["a dog", "two kids", "an old man", "a red car", "the cat", "a woman", "a cyclist"]
VERBS = ["sitting", "running", "waiting", "parked", "sleeping", "standing", "playing"]
PLACES = ["in the park", "on a beach", "near the station", "by a lake", "in the snow"]
EXTRAS = ["", " at sunset", " on a foggy morning", " after the rain", " with friends"]
REWORDS = {"a dog": "a puppy", "running": "jogging", "in the park": "inside a garden"}
STEP2 = ["canine", "youngsters", "elderly gentleman", "automobile", "feline", "lady", "rider"]


def synthetic_pairs(count: int, seed: int = 0) -> pa.Table:
    """``count`` stage-2 rows drawn from a few thousand templated captions and paraphrases."""
    rng = np.random.default_rng(seed)
    captions = [
        f"{s} {v} {p}{e}" for s in SUBJECTS for v in VERBS for p in PLACES for e in EXTRAS
    ]
    step1 = []
    for caption in captions:
        for old, new in REWORDS.items():
            caption = caption.replace(old, new)
        step1.append(caption.capitalize() + ".")
    step2 = [f"{word} {rng.choice(VERBS)} outdoors, {rng.choice(PLACES)}" for word in STEP2]
    pick = rng.integers(0, len(captions), count)
    statuses = pa.array(rng.choice(["ok"] * 18 + ["refused", "error"], count))
    leftover = rng.random(count) < 0.02
    paraphrase_1 = pa.array(step1).take(pick).to_numpy(zero_copy_only=False).astype(object)
    paraphrase_1[leftover] = "Here is a paraphrase of the given caption"
    return pa.table(
        {
            schema.CAPTION_ID: pl.int_range(count, eager=True).cast(pl.String).str.zfill(9),
            schema.SHARD: pa.array(["bench"] * count),
            schema.TEXT: pa.array(captions).take(pick),
            schema.PARAPHRASE_1: pa.array(paraphrase_1, pa.string()),
            schema.STATUS_1: statuses,
            schema.PARAPHRASE_2: pa.array(step2).take(rng.integers(0, len(step2), count)),
            schema.STATUS_2: pa.array(["ok"] * count),
            schema.NSFW: pa.array(rng.choice(["UNLIKELY"] * 30 + ["NSFW"], count)),
        }
    )


def lexical_rules() -> RuleSet:
    """The lexical rules of the shipped rules file, with their parameters."""
    shipped = load_rules(RULES_FILE)
    lexical = (
        NsfwRule,
        ParaphraseStatusRule,
        CaptionLengthRule,
        ParaphraseLengthRule,
        PromptLeftoverRule,
        CopyRule,
        LexicalChangeRule,
        DedupRule,
    )
    return shipped.model_copy(
        update={"rules": tuple(r for r in shipped.rules if isinstance(r, lexical))}
    )


def python_loop_filter(rows: list[dict], rules: RuleSet) -> int:
    """The same lexical checks, row by row in plain Python; returns the number kept."""
    by_type = {type(rule): rule for rule in rules.rules}
    nsfw, status = by_type[NsfwRule], by_type[ParaphraseStatusRule]
    caption_len, para_len = by_type[CaptionLengthRule], by_type[ParaphraseLengthRule]
    leftover, copy = by_type[PromptLeftoverRule], by_type[CopyRule]
    change = by_type[LexicalChangeRule]
    phrases = re.compile("|".join(r"\b" + re.escape(p) for p in leftover.phrases), re.I)
    word = re.compile(r"[^\s\W_]+|_+|\d+")

    def words(text: str) -> list[str]:
        return word.findall(text.lower())

    def jaccard(a: set[str], b: set[str]) -> float:
        union = len(a | b)
        return len(a & b) / union if union else 1.0

    seen: set[tuple[str, ...]] = set()
    kept = 0
    for row in rows:
        if (row["nsfw"] or "").upper() in nsfw.drop_tags:
            continue
        if row["status_1"] not in status.allowed or row["status_2"] not in status.allowed:
            continue
        texts = [row["text"], row["paraphrase_1"] or "", row["paraphrase_2"] or ""]
        counts = [len(t.split()) for t in texts]
        if not caption_len.min_tokens <= counts[0] <= caption_len.max_tokens:
            continue
        if any(not para_len.min_tokens <= n <= para_len.max_tokens for n in counts[1:]):
            continue
        if any(phrases.search(t) for t in texts[1:]):
            continue
        tokens = [words(t) for t in texts]
        sets = [set(t) for t in tokens]
        if any(
            tokens[i] == tokens[i + 1] or jaccard(sets[i], sets[i + 1]) >= copy.near_identical_jaccard
            for i in (0, 1)
        ):
            continue
        if not change.min_jaccard <= jaccard(sets[1], sets[2]) <= change.max_jaccard:
            continue
        key = tuple(" ".join(t) for t in tokens)
        if key in seen:
            continue
        seen.add(key)
        kept += 1
    return kept


def bench_lexical(count: int, loop_count: int) -> None:
    pairs = synthetic_pairs(count)
    rules = lexical_rules()
    apply_filter_rules(pairs.slice(0, 10_000), rules, None)  # warm up regex caches
    start = time.perf_counter()
    outcome = apply_filter_rules(pairs, rules, None)
    vectorised_s = time.perf_counter() - start
    vectorised_rate = count / vectorised_s

    rows = pairs.slice(0, loop_count).to_pylist()
    start = time.perf_counter()
    loop_kept = python_loop_filter(rows, rules)
    loop_rate = loop_count / (time.perf_counter() - start)
    vector_kept = len(apply_filter_rules(pairs.slice(0, loop_count), rules, None).kept)

    print(f"lexical rules, {count:,} pairs: {vectorised_s:.2f} s = {vectorised_rate:,.0f} pairs/s")
    print(f"  kept {len(outcome.kept):,} (pass rate {outcome.pass_rate:.3f}); drops {outcome.drop_counts}")
    print(f"  python loop on {loop_count:,} pairs: {loop_rate:,.0f} pairs/s (kept {loop_kept:,}, vectorised kept {vector_kept:,})")
    print(f"  ratio vectorised / python loop: {vectorised_rate / loop_rate:.1f}x (goal >= 1M pairs/s: {'met' if vectorised_rate >= 1e6 else 'NOT met'})")


def bench_semantic(count: int) -> None:
    torch.set_num_threads(2)
    pairs = synthetic_pairs(count, seed=1)
    shipped = load_rules(RULES_FILE)
    meaning_only = shipped.model_copy(
        update={"rules": tuple(r for r in shipped.rules if r.name == "meaning_kept")}
    )
    encoder = SentenceEncoder()
    texts = [pairs[c].to_pylist() for c in (schema.TEXT, schema.PARAPHRASE_1, schema.PARAPHRASE_2)]
    all_texts = texts[0] + texts[1] + texts[2]
    encoder.encode(all_texts[:64])  # warm up

    start = time.perf_counter()
    encoder.encode(all_texts)
    raw_s = time.perf_counter() - start
    start = time.perf_counter()
    outcome = apply_filter_rules(pairs, meaning_only, encoder)
    rule_s = time.perf_counter() - start
    print(f"meaning rule, {count:,} pairs ({len(set(all_texts)):,} unique texts):")
    print(f"  raw encoder.encode: {raw_s:.2f} s = {count / raw_s:,.0f} pairs/s")
    print(f"  apply_filter_rules: {rule_s:.2f} s = {count / rule_s:,.0f} pairs/s (kept {len(outcome.kept)})")
    print(f"  rule / raw encoder throughput: {raw_s / rule_s:.1%} (goal >= 90%)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--loop-pairs", type=int, default=100_000)
    parser.add_argument("--semantic-pairs", type=int, default=2_000)
    args = parser.parse_args()
    bench_lexical(args.pairs, args.loop_pairs)
    bench_semantic(args.semantic_pairs)


if __name__ == "__main__":
    main()
