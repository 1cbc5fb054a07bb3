"""stage1_paraphrases (caption -> T') and stage2_paraphrases (T' -> T''), per shard.

Both steps share the ``llm_backend`` concurrency pool, so a deployment caps how many
shards hit the LLM at once, and both go through the content-addressed cache, so a
rerun or a re-materialization after a downstream change makes no LLM calls for rows
already answered.
"""

from collections.abc import Callable
from typing import Literal

import dagster as dg
import pyarrow as pa

from paraclip_pipeline import schema
from paraclip_pipeline.defs import conditions
from paraclip_pipeline.defs.metadata import table_preview
from paraclip_pipeline.defs.partitions import caption_shards
from paraclip_pipeline.defs.progress import heartbeat
from paraclip_pipeline.defs.resources import ParaphraserResource, StorageResource
from paraclip_pipeline.storage import table_fingerprint

PARAPHRASE_GROUP = "paraphrases"
LLM_POOL = "llm_backend"


def _run_stage(
    context: dg.AssetExecutionContext,
    rows: pa.Table,
    stage: Literal[1, 2],
    paraphraser: ParaphraserResource,
    storage: StorageResource,
) -> dg.Output[pa.Table]:
    from paraclip_pipeline.paraphrase.engine import run_paraphrase_stage

    with heartbeat(context.log.info, f"paraphrase step {stage}") as progress:
        result = run_paraphrase_stage(
            rows,
            stage=stage,
            config=paraphraser.config(),
            cache_dir=storage.layout.paraphrase_cache_dir,
            log=progress,
        )
    table = result.table
    status_column = schema.STATUS_1 if stage == 1 else schema.STATUS_2
    text_column = schema.PARAPHRASE_1 if stage == 1 else schema.PARAPHRASE_2
    status_counts = table.column(status_column).value_counts().to_pylist()
    return dg.Output(
        table,
        data_version=dg.DataVersion(table_fingerprint(table)),
        metadata={
            **result.stats.as_metadata(),
            "backend": paraphraser.backend,
            "model": paraphraser.model or "(backend default)",
            **{f"status_{item['values']}": int(item["counts"]) for item in status_counts},
            "preview": table_preview(table, [schema.TEXT, text_column, status_column]),
        },
    )


def _paraphrase_asset(
    stage: Literal[1, 2],
    upstream: str,
    select: Callable[[pa.Table], pa.Table],
    description: str,
) -> dg.AssetsDefinition:
    """One paraphrasing step as a per-shard asset reading ``upstream``."""

    @dg.asset(
        name=f"stage{stage}_paraphrases",
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
        rows: pa.Table,
        paraphraser: ParaphraserResource,
        storage: StorageResource,
    ) -> dg.Output[pa.Table]:
        return _run_stage(context, select(rows), stage, paraphraser, storage)

    return paraphrase_step


stage1_paraphrases = _paraphrase_asset(
    1,
    "raw_captions",
    lambda captions: captions.select(list(schema.STAGE1_INPUT_COLUMNS)),
    "Step 1: each caption paraphrased concisely (T'); noisy alt-text becomes plain language.",
)
stage2_paraphrases = _paraphrase_asset(
    2,
    "stage1_paraphrases",
    lambda stage1: stage1,
    "Step 2: T' paraphrased again with new words (T'').",
)
