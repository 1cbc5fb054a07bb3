"""The per-shard data steps as plain functions of (shard key, options) -> record, for Ray.

Each step calls the same plain function its in-process asset calls (``stream_shard``,
``StageRun.process_shard``, ``stream_filter_rules``, ``stream_image_embeddings``), reads its
inputs from and writes its output to the storage layout the IO manager uses
(``assets/<step>/<shard>.parquet``, atomically), and reports the data version the
in-process asset reports, so a shard built on Ray is the same file with the same data
version as one built in-process. ``options`` is plain data (it travels to Ray workers):
``StepOptions`` names its keys.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, Literal, TypedDict

from paraclip_pipeline import schema
from paraclip_pipeline.asset_names import (
    FILTERED_PAIRS,
    FILTERED_PAIRS_REJECTED,
    IMAGE_EMBEDDINGS,
    RAW_CAPTIONS,
    STAGE1_PARAPHRASES,
    STAGE2_PARAPHRASES,
)
from paraclip_pipeline.paraphrase.config import CO_CAPTIONS
from paraclip_pipeline.storage import (
    ParquetTable,
    StorageLayout,
    parquet_stream,
)

# What every step returns for one shard; the Dagster side reports it as that partition's
# materialization. ``error`` is set (and the rest empty) when the shard failed: one bad shard
# fails its own partition, never the batch's other shards. ``quarantine`` is set instead when
# the shard file cannot be ingested (the reader's message), as in-process raw_captions
# quarantines it: not a failure, the shard is left out.
ShardRecord = dict[str, Any]
RECORD_FIELDS = ("shard", "rows", "data_version", "path", "metadata_json", "error", "quarantine")


class StepOptions(TypedDict, total=False):
    storage_root: str
    batch_rows: int  # rows per streamed batch (StorageResource.batch_rows)
    location: str  # shard location (directory or fsspec URI)
    image_root: str | None
    max_caption_chars: int
    paraphraser: dict[str, Any]  # ParaphraserConfig fields
    rules_path: str
    clip_profile: str
    clip_device: str


def _layout(options: StepOptions) -> StorageLayout:
    return StorageLayout(Path(options["storage_root"]))


def _built(
    shard_key: str, rows: int, data_version: str, path: Path, metadata: dict[str, Any]
) -> ShardRecord:
    """The record of a shard whose output was written (no error, not quarantined)."""
    return {
        "shard": shard_key,
        "rows": rows,
        "data_version": data_version,
        "path": str(path),
        "metadata_json": json.dumps(metadata),
        "error": None,
        "quarantine": None,
    }


def ingest_shard(shard_key: str, options: StepOptions) -> ShardRecord:
    """raw_captions, streamed as the in-process asset streams it (``stream_shard``, the
    caption ids' first pass spilled under the storage root's scratch), so a LAION-size shard
    never sits in a Ray worker's memory; data version = the shard file's sha256, as
    in-process. An empty or unreadable shard raises before anything is written."""
    from paraclip_pipeline.sources import find_shard, shard_content_hash, stream_shard

    shard, layout = find_shard(options["location"], shard_key), _layout(options)
    layout.scratch_dir.mkdir(parents=True, exist_ok=True)
    stream = stream_shard(
        shard,
        max_caption_chars=options["max_caption_chars"],
        image_root=options["image_root"],
        batch_rows=options["batch_rows"],
        spill_dir=layout.scratch_dir,
    )
    target = layout.partition_file(RAW_CAPTIONS, shard_key)
    with parquet_stream(target, schema.RAW_CAPTIONS_SCHEMA) as writer:
        for table, _image_problems in stream.batches:
            writer.write(table)
    return _built(
        shard_key, writer.rows, shard_content_hash(shard), target, {"format": shard.format}
    )


def paraphraser_config(options: StepOptions):
    from paraclip_pipeline.paraphrase.config import ParaphraserConfig

    return ParaphraserConfig(**options["paraphraser"])


def _paraphrase_step(stage: Literal[1, 2]) -> Callable[..., ShardRecord]:
    def paraphrase_shard(
        shard_key: str, options: StepOptions, backend: Any | None = None
    ) -> ShardRecord:
        """``backend``: a long-lived one (a Ray actor's async client); None builds one per shard.

        Streamed as the in-process asset streams it (``StageRun.process_shard``: one cache
        lookup for the shard, ``batch_rows`` at a time), so both engines write the same bytes.
        """
        from paraclip_pipeline.paraphrase.engine import StageRun

        config, layout = paraphraser_config(options), _layout(options)
        if stage == 1:
            source, columns = RAW_CAPTIONS, list(schema.STAGE1_INPUT_COLUMNS)
        else:
            source, columns = STAGE1_PARAPHRASES, None
        rows = ParquetTable(str(layout.partition_file(source, shard_key)))
        if config.backend == CO_CAPTIONS:  # answers from this shard's groups, never shared
            from paraclip_pipeline.paraphrase.backends import build_backend
            from paraclip_pipeline.paraphrase.backends.co_captions import read_caption_groups

            raw_file = layout.partition_file(RAW_CAPTIONS, shard_key)
            backend = build_backend(config, caption_groups=read_caption_groups(raw_file))
        target = layout.partition_file(
            STAGE1_PARAPHRASES if stage == 1 else STAGE2_PARAPHRASES, shard_key
        )
        output_schema = schema.STAGE1_SCHEMA if stage == 1 else schema.STAGE2_SCHEMA
        with (
            StageRun(
                stage=stage, config=config, cache_dir=layout.paraphrase_cache_dir, backend=backend
            ) as run,
            parquet_stream(target, output_schema) as writer,
        ):
            layout.scratch_dir.mkdir(parents=True, exist_ok=True)
            batches = partial(rows.batches, options["batch_rows"], columns)
            for table in run.process_shard(batches, layout.scratch_dir):
                writer.write(table)
            stats = run.stats()
        return _built(shard_key, writer.rows, writer.fingerprint, target, stats.as_metadata())

    return paraphrase_shard


@lru_cache(maxsize=4)
def _rules(path: str):
    from paraclip_pipeline.filtering.rules import load_rules

    return load_rules(Path(path))


def filter_shard(shard_key: str, options: StepOptions) -> ShardRecord:
    """filtered_pairs and the rejected rows beside it, streamed as the in-process asset does
    (``filtering.stream``), so both engines write the same bytes."""
    from paraclip_pipeline.filtering.stream import paired_batches, stream_filter_rules
    from paraclip_pipeline.modeling.sentence_encoder import shared_sentence_encoder

    rules = _rules(options["rules_path"])
    layout, batch_rows = _layout(options), options["batch_rows"]
    kept_path = layout.partition_file(FILTERED_PAIRS, shard_key)
    rejected_path = layout.partition_file(FILTERED_PAIRS_REJECTED, shard_key)
    pairs = paired_batches(
        ParquetTable(str(layout.partition_file(STAGE2_PARAPHRASES, shard_key))).batches(batch_rows),
        ParquetTable(str(layout.partition_file(RAW_CAPTIONS, shard_key))).batches(
            batch_rows, [schema.CAPTION_ID, schema.NSFW, schema.INPUT_ISSUE]
        ),
    )
    layout.scratch_dir.mkdir(parents=True, exist_ok=True)
    outcome = stream_filter_rules(
        pairs,
        rules,
        shared_sentence_encoder() if rules.needs_encoder else None,
        kept_target=kept_path,
        rejected_target=rejected_path,
        batch_rows=batch_rows,
        work_dir=layout.scratch_dir,
    )
    metadata = {
        "rows_in": outcome.rows_in,
        "rows_kept": outcome.kept_rows,
        "pass_rate": float(outcome.pass_rate),
        "rules_hash": rules.content_hash,
        "rejected_rows_path": str(rejected_path),
        "drops_by_rule": outcome.drop_counts,
    }
    return _built(shard_key, outcome.kept_rows, outcome.kept_fingerprint, kept_path, metadata)


@lru_cache(maxsize=2)
def _clip(profile: str, device: str):
    """One frozen CLIP per worker process: the tower loads once, not once per shard."""
    from paraclip_pipeline.modeling.factory import load_clip
    from paraclip_pipeline.modeling.profiles import get_profile

    return load_clip(get_profile(profile), device=device)


def embed_shard(shard_key: str, options: StepOptions) -> ShardRecord:
    from paraclip_pipeline.modeling.image_embeddings import INPUT_COLUMNS, stream_image_embeddings

    raw = ParquetTable(str(_layout(options).partition_file(RAW_CAPTIONS, shard_key)))
    clip = _clip(options["clip_profile"], options.get("clip_device", "cpu"))
    # Streamed in batches and small row groups, as in-process (the files are compared
    # byte for byte).
    path = _layout(options).partition_file(IMAGE_EMBEDDINGS, shard_key)
    batches = raw.batches(options["batch_rows"], INPUT_COLUMNS)
    data_version, stats = stream_image_embeddings(batches, clip, path)
    metadata = {
        "precomputed": stats.precomputed,
        "computed": stats.computed,
        "unreadable_images": stats.unreadable_images,
    }
    return _built(shard_key, stats.rows, data_version, path, metadata)


STEPS: dict[str, Callable[..., ShardRecord]] = {
    RAW_CAPTIONS: ingest_shard,
    STAGE1_PARAPHRASES: _paraphrase_step(1),
    STAGE2_PARAPHRASES: _paraphrase_step(2),
    FILTERED_PAIRS: filter_shard,
    IMAGE_EMBEDDINGS: embed_shard,
}
# The LLM steps: on Ray they run in an actor pool, each actor one long-lived async client.
PARAPHRASE_STEPS = frozenset({STAGE1_PARAPHRASES, STAGE2_PARAPHRASES})
# Dependency order: each step reads only outputs of steps before it.
STEP_ORDER = (
    RAW_CAPTIONS,
    STAGE1_PARAPHRASES,
    STAGE2_PARAPHRASES,
    FILTERED_PAIRS,
    IMAGE_EMBEDDINGS,
)


def run_step_safely(
    step: str, shard_key: str, options: StepOptions, **step_kwargs: Any
) -> ShardRecord:
    """``STEPS[step]`` for one shard; an exception becomes the record's ``error`` (with the
    exception's own message, which names the file) so the batch's other shards still land."""
    from paraclip_pipeline.sources import ShardReadError, find_shard, shard_content_hash

    empty = dict.fromkeys(RECORD_FIELDS)
    try:
        return STEPS[step](shard_key, options, **step_kwargs)
    except ShardReadError as error:  # an unreadable shard file: quarantined, as in-process
        content_hash = shard_content_hash(find_shard(options["location"], shard_key))
        metadata = json.dumps({"content_sha256": content_hash})
        return {**empty, "shard": shard_key, "quarantine": str(error), "metadata_json": metadata}
    except Exception as error:
        return {**empty, "shard": shard_key, "error": f"{type(error).__name__}: {error}"}
