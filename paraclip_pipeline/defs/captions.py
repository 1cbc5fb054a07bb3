"""raw_captions: one partition per caption shard, normalised to one schema."""

import itertools
from collections import Counter
from collections.abc import Iterator

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from paraclip_pipeline import schema
from paraclip_pipeline.asset_names import RAW_CAPTIONS
from paraclip_pipeline.defs.metadata import report_unusable_images, table_preview
from paraclip_pipeline.defs.partitions import caption_shards
from paraclip_pipeline.defs.resources import ShardSourceResource, StorageResource
from paraclip_pipeline.distributed import ENGINE_IN_PROCESS
from paraclip_pipeline.lineage.shard_status import QUARANTINE_REASON_KEY, QUARANTINE_RUN_TAG
from paraclip_pipeline.storage import ParquetTable, parquet_stream

CAPTIONS_GROUP = "captions"
PREVIEW_ROWS = 5
IMAGE_PROBLEM_EXAMPLES = 20


@dg.asset(
    name=RAW_CAPTIONS,
    partitions_def=caption_shards,
    group_name=CAPTIONS_GROUP,
    code_version="raw_captions-v2",
    kinds={"parquet"},
    tags={"paraclip/stage": "ingest"},
    # A bad shard is quarantined: no output, so the run succeeds and skips the rest.
    output_required=False,
)
def raw_captions(
    context: dg.AssetExecutionContext,
    shard_source: ShardSourceResource,
    storage: StorageResource,
) -> Iterator[dg.Output[ParquetTable]]:
    """Caption rows of one shard (LAION Parquet, JSONL or captions.txt + img_ids.txt).

    Read and written in record batches (``storage.batch_rows`` rows), so a LAION-size
    shard never sits in memory. The data version is the shard file's content hash, so an
    unchanged shard never makes anything downstream stale. Image paths that cannot be
    used are counted by reason in ``unusable_images`` and logged once as a warning event.

    A shard that cannot be read is QUARANTINED, not failed: the reason is recorded as an
    observation of this partition (its page in the UI), as a run tag and as one warning;
    nothing downstream runs for it and training leaves it out, while every other shard
    keeps flowing. Fixing the file (new content hash) makes the sensor retry it.
    """
    from paraclip_pipeline.sources import IMAGE_PATH_PROBLEMS, ShardReadError, shard_content_hash

    shard = shard_source.find(context.partition_key)
    target = storage.layout.partition_file(RAW_CAPTIONS, context.partition_key)
    problem_counts = Counter({reason: 0 for reason in IMAGE_PATH_PROBLEMS})
    examples: list[str] = []
    flagged = with_image = 0
    head: pa.Table | None = None
    try:
        storage.layout.scratch_dir.mkdir(parents=True, exist_ok=True)
        stream = shard_source.stream(shard, storage.batch_rows, storage.layout.scratch_dir)
        # The first batch before the file: an empty shard fails here, leaving nothing behind.
        first = next(stream.batches)
        with parquet_stream(target, schema.RAW_CAPTIONS_SCHEMA) as writer:
            for table, problems in itertools.chain([first], stream.batches):
                writer.write(table)
                head = head if head is not None else table.slice(0, PREVIEW_ROWS)
                flagged += len(table) - pc.sum(pc.is_null(table[schema.INPUT_ISSUE])).as_py()
                with_image += len(table) - table[schema.IMAGE_PATH].null_count
                problem_counts.update(problem.reason for problem in problems)
                room = IMAGE_PROBLEM_EXAMPLES - len(examples)
                examples.extend(str(problem) for problem in problems[:room])
    except ShardReadError as error:
        quarantine(context, context.partition_key, str(error), shard_content_hash(shard))
        return
    assert head is not None  # an empty shard raised ShardReadError
    content_hash = shard_content_hash(shard)
    yield dg.Output(
        ParquetTable(str(target)),
        data_version=dg.DataVersion(content_hash),
        metadata={
            "engine": ENGINE_IN_PROCESS,
            "rows": writer.rows,
            "flagged_rows": int(flagged),
            "format": shard.format,
            "source": dg.MetadataValue.path(shard.path),
            "content_sha256": content_hash,
            "preview": table_preview(head, [schema.CAPTION_ID, schema.TEXT, schema.INPUT_ISSUE]),
            "rows_with_image_path": int(with_image),
            "image_root": dg.MetadataValue.path(stream.image_base),
            **report_unusable_images(context, dict(problem_counts), examples),
        },
    )


def quarantine(
    context: dg.AssetExecutionContext, shard: str, reason: str, content_hash: str
) -> None:
    """Record shard ``shard`` as quarantined: an observation of its raw_captions partition
    (the reason, on the partition's page), a run tag and one warning. The Ray multi-asset
    calls it for each unreadable shard of its batch."""
    context.log_event(
        dg.AssetObservation(
            asset_key=RAW_CAPTIONS,
            partition=shard,
            metadata={QUARANTINE_REASON_KEY: reason, "content_sha256": content_hash},
        )
    )
    # Run tags are plain strings shown in the runs list; keep them short (a batch run's tag
    # names its last quarantined shard; each has its own observation and warning).
    context.instance.add_run_tags(context.run_id, {QUARANTINE_RUN_TAG: f"{shard}: {reason}"[:200]})
    context.log.warning(f"shard {shard} quarantined: {reason}")
