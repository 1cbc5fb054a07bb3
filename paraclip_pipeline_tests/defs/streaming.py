"""Synthetic LAION-style shards through the per-shard assets, for the streaming tests, the
kill -9 worker and ``benchmarks/bench_data_scale.py`` (issue 14).

The offline WordNet rewriter paraphrases ~40 captions/s, so these runs swap in
``CheapRewriter`` (a deterministic word rewrite, microseconds a caption) and the shipped
rules without the two model rules (MiniLM meaning, langid language), which judge each row
alone and would only add constant per-row time.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from paraclip_pipeline.asset_names import (
    FILTERED_PAIRS,
    FILTERED_PAIRS_REJECTED,
    RAW_CAPTIONS,
    STAGE1_PARAPHRASES,
    STAGE2_PARAPHRASES,
)
from paraclip_pipeline.defs.captions import raw_captions
from paraclip_pipeline.defs.filtering import build_filtered_pairs
from paraclip_pipeline.defs.io import ArrowParquetIOManagerResource
from paraclip_pipeline.defs.paraphrases import stage1_paraphrases, stage2_paraphrases
from paraclip_pipeline.defs.partitions import caption_shards
from paraclip_pipeline.defs.resources import (
    ParaphraserResource,
    SentenceEncoderResource,
    ShardSourceResource,
    StorageResource,
)
from paraclip_pipeline.paraphrase import engine
from paraclip_pipeline.paraphrase.backends.base import (
    Completion,
    ParaphraseBackend,
    ParaphraseRequest,
)
from paraclip_pipeline.paraphrase.config import ParaphraserConfig
from paraclip_pipeline.settings import REPO_ROOT

STAGE_OUTPUTS = (
    RAW_CAPTIONS,
    STAGE1_PARAPHRASES,
    STAGE2_PARAPHRASES,
    FILTERED_PAIRS,
    FILTERED_PAIRS_REJECTED,
)
MODEL_RULES = ("meaning_kept", "language")
_WORDS = [
    "red",
    "blue",
    "green",
    "old",
    "small",
    "large",
    "wooden",
    "stone",
    "dog",
    "cat",
    "horse",
    "bird",
    "boat",
    "car",
    "house",
    "tree",
    "river",
    "street",
    "beach",
    "mountain",
    "garden",
    "kitchen",
    "table",
    "chair",
    "window",
    "light",
    "morning",
    "evening",
    "running",
    "sitting",
    "standing",
    "sleeping",
    "near",
    "under",
    "beside",
    "behind",
    "over",
]
_LONG_WORD = re.compile(r"\b(\w{4,})\b")


class CheapRewriter(ParaphraseBackend):
    """Deterministic stand-in LLM: every word of four letters or more gets a stage suffix,
    so each step changes the content words and never undoes the other."""

    name = "cheap-rewriter"
    default_model = "cheap-rewriter-v1"

    def _generate(self, requests: Sequence[ParaphraseRequest]) -> list[Completion]:
        suffix = ("ish", "ful")
        return [
            Completion(text=_LONG_WORD.sub(rf"\1{suffix[request.stage - 1]}", request.text))
            for request in requests
        ]


def use_cheap_rewriter(monkeypatch: pytest.MonkeyPatch | None = None) -> None:
    """Make the paraphrase engine build ``CheapRewriter`` whatever the configured backend."""

    def build(config: ParaphraserConfig) -> ParaphraseBackend:
        return CheapRewriter(config)

    if monkeypatch is not None:
        monkeypatch.setattr(engine, "build_backend", build)
    else:
        engine.build_backend = build  # type: ignore[assignment]  # worker and bench processes


def write_laion_shard(directory: Path, key: str, rows: int, seed: int = 0) -> Path:
    """A LAION-style Parquet shard: 3-12 word captions, ~1% repeated texts, NSFW tags,
    some blank captions, sample ids (a few repeated)."""
    rng = random.Random(seed)
    texts, sample_ids, nsfw = [], [], []
    for index in range(rows):
        if index and rng.random() < 0.01:
            texts.append(texts[rng.randrange(index)])
        elif rng.random() < 0.005:
            texts.append("  ")
        else:
            words = rng.choices(_WORDS, k=rng.randint(3, 12))
            texts.append(f"a photo of {' '.join(words)} number {index}")
        sample_ids.append(index if rng.random() > 0.001 else max(0, index - 1))
        nsfw.append(rng.choices(["UNLIKELY", "UNSURE", "NSFW"], [0.95, 0.03, 0.02])[0])
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{key}.parquet"
    table = pa.table({"SAMPLE_ID": pa.array(sample_ids, pa.int64()), "TEXT": texts, "NSFW": nsfw})
    pq.write_table(table, path, row_group_size=1 << 16)
    return path


def rules_without_models(directory: Path) -> Path:
    """The shipped rules with the model rules off and any pass rate allowed."""
    rules = yaml.safe_load((REPO_ROOT / "data" / "filter_rules.yaml").read_text(encoding="utf-8"))
    for rule in rules["rules"]:
        if rule["name"] in MODEL_RULES:
            rule["enabled"] = False
    rules["pass_rate"] = {"min": 0.0, "max": 1.0}
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    return path


def stage_assets(rules_path: Path) -> list[dg.AssetsDefinition]:
    return [
        raw_captions,
        stage1_paraphrases,
        stage2_paraphrases,
        build_filtered_pairs(rules_path),
    ]


def stage_resources(
    shards: Path, storage_root: Path, batch_rows: int, chunk_size: int | None = None
) -> dict[str, object]:
    return {
        "shard_source": ShardSourceResource(location=str(shards)),
        "storage": StorageResource(root=str(storage_root), batch_rows=batch_rows),
        "io_manager": ArrowParquetIOManagerResource(root=str(storage_root)),
        "paraphraser": ParaphraserResource(chunk_size=chunk_size),
        "sentence_encoder": SentenceEncoderResource(),
    }


def materialize_stages(
    shards: Path,
    storage_root: Path,
    key: str,
    batch_rows: int,
    rules_path: Path,
    instance: dg.DagsterInstance,
    only: str | None = None,
    chunk_size: int | None = None,
) -> dg.ExecuteInProcessResult:
    """The per-shard assets (or ``only`` one of them, upstream read from storage)."""
    if key not in instance.get_dynamic_partitions(caption_shards.name):
        instance.add_dynamic_partitions(caption_shards.name, [key])
    assets = stage_assets(rules_path)
    selection = None if only is None else [dg.AssetKey(only)]
    return dg.materialize(
        assets,
        partition_key=key,
        instance=instance,
        resources=stage_resources(shards, storage_root, batch_rows, chunk_size),
        selection=selection,
    )


def stage_files(storage_root: Path, key: str) -> dict[str, Path]:
    return {name: storage_root / "assets" / name / f"{key}.parquet" for name in STAGE_OUTPUTS}
