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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import torch

from paraclip_pipeline import schema
from paraclip_pipeline.filtering.apply import FilterOutcome, apply_filter_rules
from paraclip_pipeline.filtering.rules import (
    CaptionInputIssueRule,
    CaptionLengthRule,
    CopyRule,
    LanguageRule,
    LexicalChangeRule,
    MeaningKeptRule,
    NsfwRule,
    ParaphraseLengthRule,
    ParaphraseStatusRule,
    PromptLeftoverRule,
    RuleSet,
    load_rules,
)
from paraclip_pipeline.modeling.sentence_encoder import SentenceEncoder

RULES_FILE = Path(__file__).resolve().parents[1] / "data" / "filter_rules.yaml"
# Parallel vocabularies: caption word, its step-1 rewording, its step-2 rewording.
ADJECTIVES = [
    ("brown", "brown", "chestnut"),
    ("small", "little", "tiny"),
    ("old", "elderly", "aged"),
    ("happy", "cheerful", "joyful"),
    ("wet", "soaked", "drenched"),
    ("young", "young", "youthful"),
    ("tall", "tall", "lofty"),
    ("black", "dark", "ebony"),
    ("white", "pale", "snowy"),
    ("red", "red", "crimson"),
    ("quiet", "calm", "serene"),
    ("big", "large", "huge"),
]
SUBJECTS = [
    ("dog", "puppy", "canine"),
    ("cat", "kitten", "feline"),
    ("man", "guy", "gentleman"),
    ("woman", "lady", "female"),
    ("child", "kid", "youngster"),
    ("horse", "pony", "stallion"),
    ("cyclist", "biker", "rider"),
    ("car", "vehicle", "automobile"),
    ("boat", "vessel", "ship"),
    ("bird", "pigeon", "songbird"),
    ("couple", "pair", "duo"),
    ("farmer", "grower", "rancher"),
]
VERBS = [
    ("running", "jogging", "sprinting"),
    ("sitting", "resting", "perched"),
    ("waiting", "standing", "lingering"),
    ("sleeping", "napping", "dozing"),
    ("playing", "frolicking", "romping"),
    ("walking", "strolling", "wandering"),
    ("parked", "stopped", "stationed"),
    ("looking", "gazing", "staring"),
]
PLACES = [
    ("in the park", "in a garden", "amid greenery"),
    ("on a beach", "by the sea", "along shores"),
    ("near the station", "by a depot", "close to platforms"),
    ("by a lake", "at a pond", "beside water"),
    ("in the snow", "on snowy ground", "amid drifts"),
    ("on a street", "on a road", "along pavement"),
    ("in a field", "on farmland", "across meadows"),
    ("at a market", "in a bazaar", "among stalls"),
]
TIMES = [
    ("", "", ""),
    (" at sunset", " at dusk", " as daylight fades"),
    (" on a foggy morning", " early on a misty day", " amid dawn haze"),
    (" after the rain", " following a shower", " once showers ended"),
]
CHATTER = "Here is a paraphrase of the given caption"


def _column(parts: list[tuple[list[tuple[str, ...]], np.ndarray]], variant: int) -> pl.Series:
    """Concatenate, per row, the chosen variant of each vocabulary slot."""
    words = [pl.Series([entry[variant] for entry in vocab]).gather(pick) for vocab, pick in parts]
    return pl.select(pl.concat_str([pl.lit(w) for w in words])).to_series()


def synthetic_pairs(count: int, seed: int = 0) -> pa.Table:
    """``count`` stage-2 rows, mostly unique, with the kinds of noise the rules look for."""
    rng = np.random.default_rng(seed)
    vocabularies = [ADJECTIVES, SUBJECTS, VERBS, PLACES, TIMES]
    parts = [(vocab, rng.integers(0, len(vocab), count)) for vocab in vocabularies]
    separators = [" ", " ", " ", "", ""]
    columns = []
    for variant in range(3):
        spaced = [
            ([tuple(v + sep for v in entry) for entry in vocab], pick)
            for (vocab, pick), sep in zip(parts, separators, strict=True)
        ]
        columns.append(_column(spaced, variant))
    # A number per row makes the rows (almost all) distinct, as in a real shard.
    number = pl.Series(rng.integers(2, 1_000_000, count)).cast(pl.String)
    suffixes = (" near {} trees", " close to {} trees", " beside {} timbers")
    text, step1, step2 = (
        pl.select(pl.format("{}" + suffix, pl.lit(column), pl.lit(number))).to_series()
        for column, suffix in zip(columns, suffixes, strict=True)
    )
    step1 = pl.select(pl.lit("A ") + pl.lit(step1)).to_series()
    noise = rng.random(count)
    # A few rows of each kind of noise: copies, chatter, failures, NSFW, one-word captions.
    step1 = pl.select(
        pl.when(pl.lit(noise < 0.03))
        .then(pl.lit(text).str.to_uppercase() + ".")
        .when(pl.lit(noise > 0.98))
        .then(pl.lit(CHATTER))
        .otherwise(pl.lit(step1))
    ).to_series()
    text = pl.select(
        pl.when(pl.lit((noise > 0.03) & (noise < 0.05))).then(pl.lit("dog")).otherwise(pl.lit(text))
    ).to_series()
    status = np.where((noise > 0.05) & (noise < 0.08), "refused", "ok")
    nsfw = np.where((noise > 0.08) & (noise < 0.10), "NSFW", "UNLIKELY")
    return pa.table(
        {
            schema.CAPTION_ID: pl.int_range(count, eager=True)
            .cast(pl.String)
            .str.zfill(9)
            .to_arrow(),
            schema.SHARD: pa.array(["bench"] * count),
            schema.TEXT: text.to_arrow(),
            schema.PARAPHRASE_1: step1.to_arrow(),
            schema.STATUS_1: pa.array(status),
            schema.PARAPHRASE_2: step2.to_arrow(),
            schema.STATUS_2: pa.array(["ok"] * count),
            schema.NSFW: pa.array(nsfw),
        }
    )


def lexical_rules() -> RuleSet:
    """The lexical rules of the shipped rules file, with their parameters."""
    shipped = load_rules(RULES_FILE)
    # Everything but the model-based rules (and the input-issue rule, which reads a column
    # the synthetic pairs do not carry).
    not_lexical = (CaptionInputIssueRule, LanguageRule, MeaningKeptRule)
    return shipped.model_copy(
        update={"rules": tuple(r for r in shipped.rules if not isinstance(r, not_lexical))}
    )


def _stop_words() -> frozenset[str]:
    from spacy.lang.en.stop_words import STOP_WORDS

    return frozenset(STOP_WORDS)


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

    stop_words = _stop_words() if change.content_words_only else frozenset()

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
            tokens[i] == tokens[i + 1]
            or jaccard(sets[i], sets[i + 1]) >= copy.near_identical_jaccard
            for i in (0, 1)
        ):
            continue
        lexical = jaccard(sets[1] - stop_words, sets[2] - stop_words)
        if not change.min_jaccard <= lexical <= change.max_jaccard:
            continue
        key = tuple(" ".join(t) for t in tokens)
        if key in seen:
            continue
        seen.add(key)
        kept += 1
    return kept


@dataclass(frozen=True)
class Timing:
    wall_s: float
    cpu_s: float  # all threads of this process; less sensitive to other load on the machine


def best_of(repeats: int, *runs: Callable[[], object]) -> list[tuple[Timing, object]]:
    """Fastest wall-clock run of each callable, with its result.

    The runs are interleaved (a, b, a, b, ...) so a change in the load other processes
    put on the shared machine hits the candidate and its baseline alike.
    """
    best: list[tuple[Timing, object] | None] = [None] * len(runs)
    for _ in range(repeats):
        for index, run in enumerate(runs):
            wall, cpu = time.perf_counter(), time.process_time()
            result = run()
            timing = Timing(time.perf_counter() - wall, time.process_time() - cpu)
            current = best[index]
            if current is None or timing.wall_s < current[0].wall_s:
                best[index] = (timing, result)
    return [entry for entry in best if entry is not None]


def report(label: str, count: int, timing: Timing) -> float:
    rate = count / timing.wall_s
    print(
        f"  {label}: {timing.wall_s:.3f} s wall, {timing.cpu_s:.3f} s cpu for {count:,} pairs"
        f" = {rate:,.0f} pairs/s ({1e6 * timing.cpu_s / count:.2f} cpu-us/pair)"
    )
    return rate


def bench_lexical(count: int, loop_count: int, repeats: int) -> None:
    pairs = synthetic_pairs(count)
    rules = lexical_rules()
    apply_filter_rules(pairs.slice(0, 10_000), rules, None)  # warm up regex caches
    print(f"lexical rules ({', '.join(rules.rule_names)}), polars threads: {pl.thread_pool_size()}")
    sample = pairs.slice(0, loop_count)
    rows = sample.to_pylist()
    (timing, outcome), (loop_timing, loop_kept) = best_of(
        repeats,
        lambda: apply_filter_rules(pairs, rules, None),
        lambda: python_loop_filter(rows, rules),
    )
    assert isinstance(outcome, FilterOutcome)
    vectorised_rate = report("apply_filter_rules (vectorised)", count, timing)
    print(f"    kept {len(outcome.kept):,} (pass rate {outcome.pass_rate:.3f})")
    print(f"    drops {outcome.drop_counts}")
    loop_rate = report("plain Python loop (baseline)", loop_count, loop_timing)
    vector_kept = len(apply_filter_rules(sample, rules, None).kept)
    print(f"    on the sample: kept {loop_kept:,} (loop) vs {vector_kept:,} (vectorised)")
    print(f"  ratio vectorised / loop: {vectorised_rate / loop_rate:.1f}x pairs/s")
    loop_cpu_per_pair = loop_timing.cpu_s / loop_count
    print(f"  same ratio in cpu time: {loop_cpu_per_pair / (timing.cpu_s / count):.1f}x")
    goal = "met" if vectorised_rate >= 1e6 else "NOT met"
    print(f"  goal >= 1,000,000 pairs/s: {goal} ({vectorised_rate / 1e6:.2f} of it)")


def bench_semantic(count: int, repeats: int) -> None:
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
    print(
        f"meaning rule on {count:,} pairs ({len(set(all_texts)):,} unique texts), torch threads 2"
    )
    # Share of each rule run spent inside encode: the rule's own overhead, measured
    # within one run and so immune to load changes between runs.
    encode = encoder.encode
    encode_shares: list[float] = []

    def rule_run() -> FilterOutcome:
        inside: list[float] = []

        def timed_encode(batch: list[str]) -> np.ndarray:
            begin = time.perf_counter()
            result = encode(batch)
            inside.append(time.perf_counter() - begin)
            return result

        encoder.encode = timed_encode  # type: ignore[method-assign]
        begin = time.perf_counter()
        try:
            return apply_filter_rules(pairs, meaning_only, encoder)
        finally:
            encoder.encode = encode  # type: ignore[method-assign]
            encode_shares.append(sum(inside) / (time.perf_counter() - begin))

    (raw_timing, _), (rule_timing, outcome) = best_of(
        repeats, lambda: encoder.encode(all_texts), rule_run
    )
    assert isinstance(outcome, FilterOutcome)
    raw_rate = report("raw encoder.encode on the same texts", count, raw_timing)
    rule_rate = report("apply_filter_rules (meaning rule only)", count, rule_timing)
    print(f"    kept {len(outcome.kept):,}")
    print(f"  rule / raw encoder throughput: {rule_rate / raw_rate:.1%} (goal >= 90%)")
    print(f"  same ratio in cpu time: {raw_timing.cpu_s / rule_timing.cpu_s:.1%}")
    shares = ", ".join(f"{share:.1%}" for share in encode_shares)
    print(f"  share of each rule run spent inside encoder.encode: {shares}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=1_000_000, help="0 skips the lexical part")
    parser.add_argument("--loop-pairs", type=int, default=100_000)
    parser.add_argument("--semantic-pairs", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.pairs:
        bench_lexical(args.pairs, args.loop_pairs, args.repeats)
    bench_semantic(args.semantic_pairs, args.repeats)


if __name__ == "__main__":
    main()
