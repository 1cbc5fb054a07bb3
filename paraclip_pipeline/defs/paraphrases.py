"""stage1_paraphrases (caption -> T') and stage2_paraphrases (T' -> T''), per shard.

Both steps share the ``llm_backend`` concurrency pool, so a deployment caps how many
shards hit the LLM at once, and both go through the content-addressed cache, so a
rerun or a re-materialization after a downstream change makes no LLM calls for rows
already answered.
"""

from collections import Counter
from typing import Literal

import dagster as dg
import pyarrow as pa

from paraclip_pipeline import schema
from paraclip_pipeline.asset_names import RAW_CAPTIONS, STAGE1_PARAPHRASES, STAGE2_PARAPHRASES
from paraclip_pipeline.defs import conditions
from paraclip_pipeline.defs.metadata import table_preview
from paraclip_pipeline.defs.partitions import caption_shards
from paraclip_pipeline.defs.progress import heartbeat
from paraclip_pipeline.defs.resources import ParaphraserResource, StorageResource
from paraclip_pipeline.distributed import ENGINE_IN_PROCESS
from paraclip_pipeline.paraphrase.config import CO_CAPTIONS
from paraclip_pipeline.storage import ParquetTable, parquet_stream

PARAPHRASE_GROUP = "paraphrases"
LLM_POOL = "llm_backend"
PREVIEW_ROWS = 5


def _run_stage(
    context: dg.AssetExecutionContext,
    rows: ParquetTable,
    columns: list[str] | None,
    stage: Literal[1, 2],
    paraphraser: ParaphraserResource,
    storage: StorageResource,
) -> dg.Output[ParquetTable]:
    """The step over ``rows`` batch by batch (``storage.batch_rows``), written as it goes,
    with one cache lookup for the whole shard (``StageRun.process_shard``)."""
    from paraclip_pipeline.paraphrase.backends import build_backend
    from paraclip_pipeline.paraphrase.backends.co_captions import read_caption_groups
    from paraclip_pipeline.paraphrase.engine import StageRun

    config = paraphraser.config()
    backend = None
    if config.backend == CO_CAPTIONS:
        # Both steps group the shard's captions by image from the raw_captions file.
        raw_path = storage.layout.partition_file(RAW_CAPTIONS, context.partition_key)
        backend = build_backend(config, caption_groups=read_caption_groups(raw_path))

    name = STAGE1_PARAPHRASES if stage == 1 else STAGE2_PARAPHRASES
    target = storage.layout.partition_file(name, context.partition_key)
    output_schema = schema.STAGE1_SCHEMA if stage == 1 else schema.STAGE2_SCHEMA
    status_column = schema.STATUS_1 if stage == 1 else schema.STATUS_2
    text_column = schema.PARAPHRASE_1 if stage == 1 else schema.PARAPHRASE_2
    statuses: Counter[str] = Counter()
    head: pa.Table | None = None
    with (
        heartbeat(context.log.info, f"paraphrase step {stage}") as progress,
        StageRun(
            stage=stage,
            config=config,
            cache_dir=storage.layout.paraphrase_cache_dir,
            backend=backend,
            log=progress,
        ) as run,
    ):
        with parquet_stream(target, output_schema) as writer:
            # One cache lookup for the shard (the input is streamed twice: texts, answers).
            storage.layout.scratch_dir.mkdir(parents=True, exist_ok=True)
            batches = run.process_shard(
                lambda: rows.batches(storage.batch_rows, columns), storage.layout.scratch_dir
            )
            for table in batches:
                writer.write(table)
                head = head if head is not None else table.slice(0, PREVIEW_ROWS)
                statuses.update(table.column(status_column).to_pylist())
        stats = run.stats()
    return dg.Output(
        ParquetTable(str(target)),
        data_version=dg.DataVersion(writer.fingerprint),
        metadata={
            "engine": ENGINE_IN_PROCESS,
            **stats.as_metadata(),
            "backend": paraphraser.backend,
            "model": paraphraser.model or "(backend default)",
            **{f"status_{status}": count for status, count in statuses.items()},
            "preview": table_preview(
                head if head is not None else output_schema.empty_table(),
                [schema.TEXT, text_column, status_column],
            ),
        },
    )


def _paraphrase_asset(
    stage: Literal[1, 2],
    upstream: str,
    columns: list[str] | None,
    description: str,
) -> dg.AssetsDefinition:
    """One paraphrasing step as a per-shard asset streaming ``columns`` of ``upstream``."""

    @dg.asset(
        name=STAGE1_PARAPHRASES if stage == 1 else STAGE2_PARAPHRASES,
        ins={"rows": dg.AssetIn(upstream)},
        partitions_def=caption_shards,
        group_name=PARAPHRASE_GROUP,
        code_version=f"stage{stage}-v1",
        pool=LLM_POOL,
        kinds={"parquet"},
        automation_condition=conditions.per_shard(),
        description=description,
    )
    def paraphrase_step(
        context: dg.AssetExecutionContext,
        rows: ParquetTable,
        paraphraser: ParaphraserResource,
        storage: StorageResource,
    ) -> dg.Output[ParquetTable]:
        return _run_stage(context, rows, columns, stage, paraphraser, storage)

    return paraphrase_step


stage1_paraphrases = _paraphrase_asset(
    1,
    RAW_CAPTIONS,
    list(schema.STAGE1_INPUT_COLUMNS),
    "Step 1: each caption paraphrased concisely (T'); noisy alt-text becomes plain language.",
)
stage2_paraphrases = _paraphrase_asset(
    2,
    STAGE1_PARAPHRASES,
    None,
    "Step 2: T' paraphrased again with new words (T'').",
)
