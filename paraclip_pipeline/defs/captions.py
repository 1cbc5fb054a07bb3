"""raw_captions: one partition per caption shard, normalised to one schema."""

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from paraclip_pipeline import schema
from paraclip_pipeline.defs.metadata import report_unusable_images, table_preview
from paraclip_pipeline.defs.partitions import caption_shards
from paraclip_pipeline.defs.resources import ShardSourceResource
from paraclip_pipeline.distributed import ENGINE_IN_PROCESS

CAPTIONS_GROUP = "captions"


@dg.asset(
    partitions_def=caption_shards,
    group_name=CAPTIONS_GROUP,
    code_version="raw_captions-v2",
    kinds={"parquet"},
    tags={"paraclip/stage": "ingest"},
)
def raw_captions(
    context: dg.AssetExecutionContext, shard_source: ShardSourceResource
) -> dg.Output[pa.Table]:
    """Caption rows of one shard (LAION Parquet, JSONL or captions.txt + img_ids.txt).

    The data version is the shard file's content hash, so an unchanged shard never makes
    anything downstream stale. Image paths that cannot be used are counted by reason in
    ``unusable_images`` and logged once as a warning event.
    """
    from paraclip_pipeline.sources import ShardReadError, shard_content_hash

    shard = shard_source.find(context.partition_key)
    try:
        read = shard_source.read(shard)
    except ShardReadError as error:
        # A bad shard fails its own partition only, with the reader's message, and no retry:
        # the same bytes would fail the same way.
        raise dg.Failure(description=str(error), allow_retries=False) from error
    table = read.table
    issues = table.column(schema.INPUT_ISSUE)
    flagged = len(table) - pc.sum(pc.is_null(issues)).as_py()
    return dg.Output(
        table,
        data_version=dg.DataVersion(shard_content_hash(shard)),
        metadata={
            "engine": ENGINE_IN_PROCESS,
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
