"""`paraclip lineage`: from a checkpoint back to the exact source captions it was trained on.

Three sources, each used for what it is authoritative on:
- the checkpoint manifest: which shard partitions the weights were trained on, and for
  each the materialization (storage id + data version) of every asset in its chain down
  to the raw shard, whose data version is the shard file's content hash; plus the
  trained caption ids. It is written at training time from indexed event-log lookups,
  so tracing 10,000 shards reads one JSON file;
- Dagster's event log, for detail on the shards asked about (``--shard`` or the shard
  of ``--caption-id``): run ids, the shard file's path, the filter rules hash;
- DuckDB over the Parquet outputs: one caption's text at every step and its filter verdict.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from paraclip_pipeline import asset_names, schema
from paraclip_pipeline.lineage.event_log import records_by_storage_id
from paraclip_pipeline.modeling.checkpoint_format import (
    MANIFEST_FILE,
    CheckpointError,
    trained_caption_ids_path,
)
from paraclip_pipeline.modeling.checkpoint_format import read_manifest as read_checkpoint_manifest
from paraclip_pipeline.storage import StorageLayout

FILTERED = dg.AssetKey(asset_names.FILTERED_PAIRS)
STAGE2 = dg.AssetKey(asset_names.STAGE2_PARAPHRASES)
STAGE1 = dg.AssetKey(asset_names.STAGE1_PARAPHRASES)
RAW = dg.AssetKey(asset_names.RAW_CAPTIONS)
IMAGE = dg.AssetKey(asset_names.IMAGE_EMBEDDINGS)
MISSING = "-"  # how an empty field prints
DETAIL_ALL_UP_TO = 50  # shards; beyond this, event-log detail only for shards asked about


class LineageError(Exception):
    """The checkpoint or caption cannot be traced (missing files or records)."""


@dataclass
class Materialization:
    asset: str
    storage_id: int | None
    run_id: str | None = None
    data_version: str | None = None
    detail: dict[str, str] = field(default_factory=dict)


@dataclass
class ShardLineage:
    partition: str
    rows: int | None
    train_rows: int | None
    steps: list[Materialization]


@dataclass
class CaptionTrace:
    caption_id: str
    shard: str | None
    source_file: str | None
    source_row: int | None
    sample_id: str | None
    raw_text: str | None
    input_issue: str | None
    paraphrase_1: str | None
    status_1: str | None
    paraphrase_2: str | None
    status_2: str | None
    verdict: str
    split: str | None
    has_image: bool | None
    trained_in_this_checkpoint: bool
    trained_in: list[str]

    def to_lines(self) -> list[str]:
        image = MISSING if self.has_image is None else ("yes" if self.has_image else "no")
        return [
            f"caption {self.caption_id} (shard {_text(self.shard)})",
            f"  source       : {_text(self.source_file)} row {_text(self.source_row)}, "
            f"source id {_text(self.sample_id)}",
            f"  raw text     : {_quoted(self.raw_text)}"
            + (f"  [{self.input_issue}]" if self.input_issue else ""),
            f"  T'  ({_text(self.status_1)}) : {_quoted(self.paraphrase_1)}",
            f"  T'' ({_text(self.status_2)}) : {_quoted(self.paraphrase_2)}",
            f"  filter       : {self.verdict}, split={_text(self.split)}",
            f"  image        : {image}",
            f"  trained in this checkpoint: {'yes' if self.trained_in_this_checkpoint else 'no'}",
            "  checkpoints trained on it: " + (", ".join(self.trained_in) or "none"),
        ]


@dataclass
class LineageReport:
    checkpoint_dir: str
    weights_sha256: str | None
    shards: list[ShardLineage]
    caption: CaptionTrace | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)

    def to_text(self) -> str:
        lines = [
            f"checkpoint {self.checkpoint_dir}",
            f"  weights sha256 {_text(self.weights_sha256)}",
        ]
        for shard in self.shards:
            lines.append(
                f"  shard {shard.partition}  rows={_text(shard.rows)} "
                f"train_rows={_text(shard.train_rows)}"
            )
            for step in shard.steps:
                # Run ids and metadata are only looked up for the shards asked about.
                run = f" run={step.run_id}" if step.run_id else ""
                extra = "".join(f"  {k}={_text(v)}" for k, v in step.detail.items())
                # image_embeddings feeds training beside the filter chain, not below it.
                depth = 2 if step.asset == IMAGE.to_user_string() else 2 + shard.steps.index(step)
                lines.append(
                    f"{'  ' * depth}<- {step.asset}  storage_id={_text(step.storage_id)}{run} "
                    f"data_version={_text(_short(step.data_version))}{extra}"
                )
        if self.caption:
            lines += self.caption.to_lines()
        return "\n".join(lines)


def _text(value: object) -> str:
    return MISSING if value is None or value == "" else str(value)


def _quoted(value: str | None) -> str:
    return MISSING if value is None else repr(value)


def _short(value: str | None) -> str | None:
    return value[:16] if value else value


def resolve_checkpoint_dir(target: str, layout: StorageLayout) -> Path:
    """A checkpoint directory, its manifest.json, or the id of the run that wrote it."""
    path = Path(target)
    if path.name == MANIFEST_FILE and path.is_file():
        return path.parent
    if (path / MANIFEST_FILE).is_file():
        return path
    by_run = layout.checkpoints_dir / target
    if (by_run / MANIFEST_FILE).is_file():
        return by_run
    # The UI shows the first 8 characters of a run id: any unique prefix will do.
    if target and "/" not in target and "*" not in target and "?" not in target:
        matches = sorted(
            path.parent for path in layout.checkpoints_dir.glob(f"{target}*/{MANIFEST_FILE}")
        )
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise LineageError(
                f"run id prefix {target!r} matches {len(matches)} checkpoints: "
                + ", ".join(path.name for path in matches)
            )
    raise LineageError(
        f"{target!r} is neither a checkpoint directory, a manifest.json, nor a run id with a "
        f"checkpoint under {layout.checkpoints_dir}"
    )


def read_manifest(checkpoint_dir: Path) -> dict[str, Any]:
    try:
        return read_checkpoint_manifest(checkpoint_dir)
    except (OSError, CheckpointError) as error:
        raise LineageError(f"cannot read {checkpoint_dir / MANIFEST_FILE}: {error}") from error


CHAIN = (FILTERED, STAGE2, STAGE1, RAW, IMAGE)


def _step(asset: dg.AssetKey, item: Mapping[str, Any]) -> Materialization:
    if asset == FILTERED:
        storage_id = item.get("filtered_pairs_storage_id")
        data_version = item.get("filtered_pairs_data_version")
    else:
        upstream = item.get("upstream", {}).get(asset.to_user_string(), {})
        storage_id, data_version = upstream.get("storage_id"), upstream.get("data_version")
    return Materialization(asset.to_user_string(), storage_id, data_version=data_version)


def _add_event_log_detail(instance: dg.DagsterInstance, shards: list[ShardLineage]) -> None:
    """Run ids and key metadata for the given shards' steps: one batched fetch per asset."""
    for asset in CHAIN:
        steps = [
            step for shard in shards for step in shard.steps if step.asset == asset.to_user_string()
        ]
        records = records_by_storage_id(instance, asset, (step.storage_id for step in steps))
        for step in steps:
            record = records.get(step.storage_id) if step.storage_id is not None else None
            if record is None:
                continue
            metadata = record.asset_materialization.metadata
            step.run_id = record.run_id
            step.detail = {
                key: str(metadata[key].value)
                for key in ("source", "rules_hash", "rows", "rows_kept", "rows_with_image")
                if key in metadata
            }


def shard_lineage(
    instance: dg.DagsterInstance,
    inputs: Sequence[Mapping[str, Any]],
    detail_for: set[str] | None = None,
) -> list[ShardLineage]:
    """The filtered_pairs -> stage2 -> stage1 -> raw_captions chain of every manifest input,
    and the image_embeddings it trained with.

    ``detail_for`` names the shards to enrich from the event log (all when None).
    """
    shards = [
        ShardLineage(
            partition=str(item.get("partition")),
            rows=item.get("rows"),
            train_rows=item.get("train_rows"),
            steps=[_step(asset, item) for asset in CHAIN],
        )
        for item in inputs
    ]
    selected = shards if detail_for is None else [s for s in shards if s.partition in detail_for]
    _add_event_log_detail(instance, selected)
    return shards


def trace_caption(
    caption_id: str, layout: StorageLayout, checkpoint_dir: Path, manifest: Mapping[str, Any]
) -> CaptionTrace:
    """One caption's path through the Parquet outputs, joined with DuckDB."""
    import duckdb

    assets = layout.root / "assets"

    def lookup(asset_dir: str, columns: str) -> tuple | None:
        files = sorted((assets / asset_dir).glob("*.parquet"))
        if not files:
            return None
        query = (
            f"SELECT {columns} FROM read_parquet(?, union_by_name=true) "
            f"WHERE {schema.CAPTION_ID} = ? LIMIT 1"
        )
        return duckdb.execute(query, [[str(f) for f in files], caption_id]).fetchone()

    raw = lookup(
        asset_names.RAW_CAPTIONS,
        f"{schema.SHARD}, {schema.TEXT}, {schema.INPUT_ISSUE}, {schema.SOURCE_ROW}, "
        f"{schema.SAMPLE_ID}",
    )
    if raw is None:
        raise LineageError(f"caption id {caption_id!r} is in no raw_captions partition")
    stage1 = lookup(asset_names.STAGE1_PARAPHRASES, f"{schema.PARAPHRASE_1}, {schema.STATUS_1}")
    stage2 = lookup(asset_names.STAGE2_PARAPHRASES, f"{schema.PARAPHRASE_2}, {schema.STATUS_2}")
    kept = lookup(asset_names.FILTERED_PAIRS, schema.SPLIT)
    rejected = lookup(asset_names.FILTERED_PAIRS_REJECTED, schema.REJECTED_BY)
    image = lookup(asset_names.IMAGE_EMBEDDINGS, schema.HAS_IMAGE)
    if kept is not None:
        verdict = "kept"
    elif rejected is not None:
        verdict = f"rejected by rule '{rejected[0]}'"
    else:
        verdict = "not filtered yet"
    trained_in = []
    for manifest_path in sorted(layout.checkpoints_dir.glob(f"*/{MANIFEST_FILE}")):
        other = manifest_path.parent
        if _caption_in_trained_ids(
            caption_id, trained_caption_ids_path(other, read_manifest(other))
        ):
            trained_in.append(str(other))
    return CaptionTrace(
        caption_id=caption_id,
        shard=raw[0],
        source_file=None,  # from raw_captions' event-log metadata, filled in by trace()
        source_row=raw[3],
        sample_id=raw[4],
        raw_text=raw[1],
        input_issue=raw[2],
        paraphrase_1=stage1[0] if stage1 else None,
        status_1=stage1[1] if stage1 else None,
        paraphrase_2=stage2[0] if stage2 else None,
        status_2=stage2[1] if stage2 else None,
        verdict=verdict,
        split=kept[0] if kept else None,
        has_image=image[0] if image else None,
        trained_in_this_checkpoint=_caption_in_trained_ids(
            caption_id, trained_caption_ids_path(checkpoint_dir, manifest)
        ),
        trained_in=trained_in,
    )


def _caption_in_trained_ids(caption_id: str, path: Path) -> bool:
    import duckdb

    if not path.is_file():
        return False
    query = f"SELECT 1 FROM read_parquet(?) WHERE {schema.CAPTION_ID} = ? LIMIT 1"
    return duckdb.execute(query, [str(path), caption_id]).fetchone() is not None


def trace(
    target: str,
    *,
    layout: StorageLayout,
    instance: dg.DagsterInstance,
    caption_id: str | None = None,
    shards: Sequence[str] | None = None,
) -> LineageReport:
    """Lineage of a checkpoint; event-log detail for ``shards`` and the caption's shard.

    With neither given, every shard gets detail when there are few (a readable report),
    and none when there are many (the manifest alone answers, in milliseconds).
    """
    checkpoint_dir = resolve_checkpoint_dir(target, layout)
    manifest = read_manifest(checkpoint_dir)
    inputs = manifest.get("inputs")
    if not isinstance(inputs, list):
        raise LineageError(f"{checkpoint_dir / MANIFEST_FILE} has no 'inputs' list")
    caption = trace_caption(caption_id, layout, checkpoint_dir, manifest) if caption_id else None
    if shards is not None or caption is not None:
        detail_for: set[str] | None = set(shards or [])
        if caption is not None and caption.shard:
            detail_for.add(caption.shard)
    else:
        detail_for = None if len(inputs) <= DETAIL_ALL_UP_TO else set()
    lineage = shard_lineage(instance, inputs, detail_for)
    if caption is not None:
        caption.source_file = next(
            (
                step.detail.get("source")
                for shard in lineage
                if shard.partition == caption.shard
                for step in shard.steps
                if step.asset == RAW.to_user_string()
            ),
            None,
        )
    return LineageReport(
        checkpoint_dir=str(checkpoint_dir),
        weights_sha256=manifest.get("weights_sha256"),
        shards=lineage,
        caption=caption,
    )
