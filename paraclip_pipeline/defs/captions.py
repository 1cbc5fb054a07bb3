"""raw_captions: one partition per caption shard, normalised to one schema."""

from collections.abc import Iterator

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from paraclip_pipeline import schema
from paraclip_pipeline.defs.metadata import report_unusable_images, table_preview
from paraclip_pipeline.defs.partitions import caption_shards
from paraclip_pipeline.defs.resources import ShardSourceResource
from paraclip_pipeline.lineage.shard_status import QUARANTINE_REASON_KEY, QUARANTINE_RUN_TAG

CAPTIONS_GROUP = "captions"


@dg.asset(
    partitions_def=caption_shards,
    group_name=CAPTIONS_GROUP,
    code_version="raw_captions-v1",
    kinds={"parquet"},
    tags={"paraclip/stage": "ingest"},
    # A bad shard is quarantined: no output, so the run succeeds and skips the rest.
    output_required=False,
)
def raw_captions(
    context: dg.AssetExecutionContext, shard_source: ShardSourceResource
) -> Iterator[dg.Output[pa.Table]]:
    """Caption rows of one shard (LAION Parquet, JSONL or captions.txt + img_ids.txt).

    The data version is the shard file's content hash, so an unchanged shard never makes
    anything downstream stale. Image paths that cannot be used are counted by reason in
    ``unusable_images`` and logged once as a warning event.

    A shard that cannot be read is QUARANTINED, not failed: the reason is recorded as an
    observation of this partition (its page in the UI), as a run tag and as one warning;
    nothing downstream runs for it and training leaves it out, while every other shard
    keeps flowing. Fixing the file (new content hash) makes the sensor retry it.
    """
    from paraclip_pipeline.sources import ShardReadError, shard_content_hash

    shard = shard_source.find(context.partition_key)
    try:
        read = shard_source.read(shard)
    except ShardReadError as error:
        _quarantine(context, str(error), shard_content_hash(shard))
        return
    table = read.table
    issues = table.column(schema.INPUT_ISSUE)
    flagged = len(table) - pc.sum(pc.is_null(issues)).as_py()
    yield dg.Output(
        table,
        data_version=dg.DataVersion(shard_content_hash(shard)),
        metadata={
            "rows": len(table),
            "flagged_rows": int(flagged),
            "format": shard.format,
            "source": dg.MetadataValue.path(shard.path),
            "content_sha256": shard_content_hash(shard),
            "preview": table_preview(table, [schema.CAPTION_ID, schema.TEXT, schema.INPUT_ISSUE]),
            "rows_with_image_path": len(table) - table.column(schema.IMAGE_PATH).null_count,
            "image_root": dg.MetadataValue.path(read.image_base),
            **report_unusable_images(
                context, read.image_problem_counts(), [str(p) for p in read.image_problems]
            ),
        },
    )


def _quarantine(context: dg.AssetExecutionContext, reason: str, content_hash: str) -> None:
    context.log_event(
        dg.AssetObservation(
            asset_key=context.asset_key,
            partition=context.partition_key,
            metadata={QUARANTINE_REASON_KEY: reason, "content_sha256": content_hash},
        )
    )
    # Run tags are plain strings shown in the runs list; keep them short.
    context.instance.add_run_tags(context.run_id, {QUARANTINE_RUN_TAG: reason[:200]})
    context.log.warning(f"shard {context.partition_key} quarantined: {reason}")
