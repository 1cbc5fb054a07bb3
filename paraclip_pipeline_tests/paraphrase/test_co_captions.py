"""The co_captions backend: human captions of one image as T' and T'' (not an LLM)."""

import json
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from paraclip_pipeline import schema
from paraclip_pipeline.defs.captions import raw_captions
from paraclip_pipeline.defs.io import ArrowParquetIOManagerResource
from paraclip_pipeline.defs.paraphrases import stage1_paraphrases, stage2_paraphrases
from paraclip_pipeline.defs.partitions import caption_shards
from paraclip_pipeline.defs.resources import (
    ParaphraserResource,
    ShardSourceResource,
    StorageResource,
)
from paraclip_pipeline.paraphrase.backends import build_backend
from paraclip_pipeline.paraphrase.backends.co_captions import caption_groups
from paraclip_pipeline.paraphrase.config import CO_CAPTIONS, ParaphraserConfig
from paraclip_pipeline.paraphrase.engine import run_paraphrase_stage

CONFIG = ParaphraserConfig(backend=CO_CAPTIONS)
DOG = ["A dog runs on grass.", "A puppy sprints across a lawn.", "Brown dog playing outside."]
BUS = ["A red bus on a bridge.", "a red bus on a bridge", "A double-decker crosses a river.",
       "Public transport over water."]  # fmt: skip
PAIR = ["A cat sleeps.", "A kitten naps."]  # only two captions: no group


def _raw(rows: list[tuple[str, str | None]]) -> pa.Table:
    return pa.table(
        {
            schema.CAPTION_ID: [f"c{i}" for i in range(len(rows))],
            schema.SHARD: ["s"] * len(rows),
            schema.SOURCE_ROW: list(range(len(rows))),
            schema.TEXT: [text for text, _ in rows],
            schema.IMAGE_REF: [image for _, image in rows],
            schema.INPUT_ISSUE: pa.nulls(len(rows), pa.string()),
        }
    )


def _shard_rows() -> list[tuple[str, str | None]]:
    dog, bus, cat = ([(text, image) for text in texts] for texts, image in
                     ((DOG, "dog.jpg"), (BUS, "bus.jpg"), (PAIR, "cat.jpg")))  # fmt: skip
    # Images interleaved: a group is its image's captions in source-row order.
    return [dog[0], bus[0], cat[0], dog[1], bus[1], bus[2], ("A lone caption.", None),
            dog[2], cat[1], bus[3]]  # fmt: skip


def _run_both(raw: pa.Table, cache_dir: Path, groups=None) -> tuple[pa.Table, int]:
    backend = build_backend(CONFIG, caption_groups=groups or caption_groups(raw))
    rows = raw.select(list(schema.STAGE1_INPUT_COLUMNS))
    stage1 = run_paraphrase_stage(
        rows, stage=1, config=CONFIG, cache_dir=cache_dir, backend=backend
    )
    stage2 = run_paraphrase_stage(
        stage1.table, stage=2, config=CONFIG, cache_dir=cache_dir, backend=backend
    )
    return stage2.table, backend.calls


def test_groups_keep_source_order_and_skip_duplicate_texts() -> None:
    groups = caption_groups(_raw(_shard_rows()))
    assert sorted(groups) == sorted([tuple(DOG), (BUS[0], BUS[2], BUS[3])])


def test_answers_are_the_next_captions_and_t2_is_never_the_caption(tmp_path: Path) -> None:
    table, calls = _run_both(_raw(_shard_rows()), tmp_path)
    by_text = {row[schema.TEXT]: row for row in table.to_pylist()}
    for group in (DOG, [BUS[0], BUS[2], BUS[3]]):
        for i, text in enumerate(group):
            row = by_text[text]
            assert (row[schema.PARAPHRASE_1], row[schema.STATUS_1]) == (group[(i + 1) % 3], "ok")
            assert (row[schema.PARAPHRASE_2], row[schema.STATUS_2]) == (group[(i + 2) % 3], "ok")
            assert row[schema.PARAPHRASE_2] != text
    # The duplicate answers like its first copy: it is a source, never a target.
    assert by_text[BUS[1]][schema.PARAPHRASE_1] == BUS[2]
    assert calls > 0


def test_captions_without_a_group_are_skipped_not_errors(tmp_path: Path) -> None:
    table, _ = _run_both(_raw(_shard_rows()), tmp_path)
    by_text = {row[schema.TEXT]: row for row in table.to_pylist()}
    for text in [*PAIR, "A lone caption."]:
        row = by_text[text]
        assert (row[schema.STATUS_1], row[schema.STATUS_2]) == ("skipped", "skipped")
        assert row[schema.PARAPHRASE_1] is None
    assert "error" not in table.column(schema.STATUS_1).to_pylist()


def test_rerun_hits_the_cache_and_a_changed_grouping_does_not(tmp_path: Path) -> None:
    raw = _raw(_shard_rows())
    first, _ = _run_both(raw, tmp_path)
    again, calls = _run_both(raw, tmp_path)
    assert calls == 0 and again.equals(first)
    regrouped = [(text, "dog.jpg") for text in [DOG[1], DOG[0], DOG[2]]]
    changed, calls = _run_both(_raw(regrouped), tmp_path)
    assert calls == 6  # a new grouping asks again, both stages
    assert changed.column(schema.PARAPHRASE_1).to_pylist() == [DOG[0], DOG[2], DOG[1]]


def test_cache_identity_changes_with_the_grouping() -> None:
    one = build_backend(CONFIG, caption_groups=[tuple(DOG)])
    same = build_backend(CONFIG, caption_groups=[tuple(DOG)])
    other = build_backend(CONFIG, caption_groups=[(DOG[1], DOG[0], DOG[2])])
    assert one.cache_identity(1) == same.cache_identity(1)
    assert one.cache_identity(1) != other.cache_identity(1)
    assert one.cache_identity(1) != one.cache_identity(2)


def test_build_backend_needs_the_groups() -> None:
    with pytest.raises(ValueError, match="caption groups"):
        build_backend(CONFIG)


def test_stage_assets_end_to_end_on_a_jsonl_shard(tmp_path: Path) -> None:
    """file_name groups survive a missing image (image_path null, image_ref kept)."""
    shards = tmp_path / "shards"
    shards.mkdir()
    lines = [
        {"id": i, "file_name": image, "caption": text}
        for i, (text, image) in enumerate(_shard_rows())
        if image is not None
    ]
    (shards / "coco.jsonl").write_text("\n".join(map(json.dumps, lines)), encoding="utf-8")
    resources = {
        "shard_source": ShardSourceResource(location=str(shards)),
        "paraphraser": ParaphraserResource(backend=CO_CAPTIONS),
        "storage": StorageResource(root=str(tmp_path / "storage")),
        "io_manager": ArrowParquetIOManagerResource(root=str(tmp_path / "storage")),
    }
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(caption_shards.name, ["coco"])
        result = dg.materialize(
            [raw_captions, stage1_paraphrases, stage2_paraphrases],
            partition_key="coco",
            resources=resources,
            instance=instance,
        )
        assert result.success
        # Streaming assets hand on their files (ParquetTable handles), not tables.
        table = result.output_for_node("stage2_paraphrases").read()
        raw = result.output_for_node("raw_captions").read()
    assert raw.column(schema.IMAGE_PATH).null_count == raw.num_rows
    rows = {row[schema.TEXT]: row for row in table.to_pylist()}
    assert rows[DOG[0]][schema.PARAPHRASE_1] == DOG[1]
    assert rows[DOG[0]][schema.PARAPHRASE_2] == DOG[2]
    assert rows[PAIR[0]][schema.STATUS_2] == "skipped"
