"""WordNet paraphraser speed on the bundled demo shards (both stages, all usable captions).

Baseline (same process): one plain MiniLM encode of the same captions, the least any
encoder-gated rewriter pays. The rewriter additionally parses with spaCy, encodes every
candidate's window and the sentence-gate rounds; the ratio says how many such encode
passes one stage costs. Goal from the brief: the whole demo (358 captions, both stages)
well under a minute on the shared 2-core box.

Run: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_wordnet_paraphrase.py
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from paraclip_pipeline.paraphrase.backends.wordnet import (
    WordNetRewriter,
    load_sentence_encoder,
    load_spacy,
    load_wordnet,
)
from paraclip_pipeline.sources import discover_shards, read_shard

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]


def demo_captions() -> list[str]:
    captions = []
    for shard in discover_shards(REPO / "data" / "shards").shards:
        raw = read_shard(shard, image_root=REPO / "data" / "images")
        issues = raw.column("input_issue").to_pylist()
        captions += [
            text
            for text, issue in zip(raw.column("text").to_pylist(), issues, strict=True)
            if issue is None
        ]
    return captions


def main() -> None:
    started = time.perf_counter()
    wordnet, nlp, encoder = load_wordnet(), load_spacy(), load_sentence_encoder()
    load_s = time.perf_counter() - started
    captions = demo_captions()

    started = time.perf_counter()
    encoder.encoder.encode(captions)  # the plain encoder: nothing remembered
    baseline_s = time.perf_counter() - started

    # A fresh rewriter per stage, as the engine builds one backend per stage run; they
    # share the process-wide remembering encoder as the demo and tests do.
    started = time.perf_counter()
    stage1 = WordNetRewriter(wordnet, nlp, encoder).rewrite_many(captions, 1)
    stage1_s = time.perf_counter() - started
    started = time.perf_counter()
    WordNetRewriter(wordnet, nlp, encoder).rewrite_many(stage1, 2)
    stage2_s = time.perf_counter() - started

    print(f"captions: {len(captions)} usable demo captions; model loading {load_s:.1f} s")
    print(f"baseline, one MiniLM encode pass: {baseline_s:.2f} s")
    for name, seconds in (("stage 1", stage1_s), ("stage 2", stage2_s)):
        print(
            f"{name}: {seconds:.2f} s, {len(captions) / seconds:.1f} captions/s, "
            f"{seconds / baseline_s:.1f}x the baseline"
        )
    total = load_s + stage1_s + stage2_s
    print(f"both stages incl. loading: {total:.1f} s (goal: well under 60 s)")


if __name__ == "__main__":
    main()
