"""Shard discovery, lookup by key, content hashes, and the bundled demo data."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from upath import UPath

from paraclip_pipeline import schema
from paraclip_pipeline.sources import (
    ShardLocationError,
    ShardNotFoundError,
    discover_shards,
    find_shard,
    read_shard,
    shard_content_hash,
)
from paraclip_pipeline.storage import sha256_file
from paraclip_pipeline_tests.sources.builders import jsonl_bytes, laion_parquet, two_file

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_DATA = REPO_ROOT / "data"


def populated_location(root: Path) -> Path:
    """Three good shards plus one entry for every way discovery can reject something."""
    laion_parquet(root, "laion_000", {"TEXT": ["a dog"]})
    jsonl_bytes(root, "web_001", b'{"caption": "a cat"}\n')
    two_file(root, "authors_002", b"a kite\n", b"k1\n")
    (root / "a b.jsonl").write_text('{"caption": "x"}\n')
    (root / "ünï.parquet").write_bytes(b"")
    (root / ".partial.jsonl.tmp").write_text("")
    (root / "notes.txt").write_text("not a shard")
    (root / "half").mkdir()
    (root / "half" / "captions.txt").write_text("x\n")
    (root / "empty_dir").mkdir()
    (root / "dup.jsonl").write_text('{"caption": "x"}\n')
    (root / "dup.parquet").write_bytes(b"")
    return root


def test_discovery_sorts_shards_and_reports_every_rejected_entry(tmp_path: Path) -> None:
    result = discover_shards(str(populated_location(tmp_path)))
    assert [(shard.key, shard.format) for shard in result.shards] == [
        ("authors_002", "two_file"),
        ("laion_000", "laion_parquet"),
        ("web_001", "jsonl"),
    ]
    assert result.shards[1].path == str(tmp_path / "laion_000.parquet")
    reasons = dict(result.rejected)
    assert [name for name, _ in result.rejected] == sorted(reasons)
    assert set(reasons) == {
        ".partial.jsonl.tmp",
        "a b.jsonl",
        "dup.jsonl",
        "dup.parquet",
        "empty_dir",
        "half",
        "notes.txt",
        "ünï.parquet",
    }
    assert reasons[".partial.jsonl.tmp"] == "hidden entry"
    assert "whitespace" in reasons["a b.jsonl"]
    assert "non-ASCII" in reasons["ünï.parquet"]
    assert "unsupported file type '.txt'" in reasons["notes.txt"]
    assert reasons["half"] == "two-file shard directory is missing img_ids.txt"
    assert "neither captions.txt nor img_ids.txt" in reasons["empty_dir"]
    assert reasons["dup.jsonl"] == (
        "shard key 'dup' is claimed by several entries: dup.jsonl, dup.parquet"
    )


def test_relative_locations_give_absolute_shard_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "shards").mkdir()
    jsonl_bytes(tmp_path / "shards", "web", b'{"caption": "a"}\n')
    monkeypatch.chdir(tmp_path)
    (shard,) = discover_shards("shards").shards
    assert shard.path == str(tmp_path / "shards" / "web.jsonl")


def test_missing_location_raises(tmp_path: Path) -> None:
    with pytest.raises(ShardLocationError, match="does not exist or is not a directory"):
        discover_shards(str(tmp_path / "nowhere"))


def test_several_locations_pool_their_shards(tmp_path: Path) -> None:
    bundled, extra = tmp_path / "bundled", tmp_path / "extra"
    bundled.mkdir(), extra.mkdir()
    jsonl_bytes(bundled, "web", b'{"caption": "a"}\n')
    jsonl_bytes(extra, "coco", b'{"caption": "b"}\n')
    jsonl_bytes(extra, "web", b'{"caption": "c"}\n')  # the same key in both: ambiguous
    memory = UPath(f"memory:///paraclip-{uuid.uuid4().hex}")
    memory.mkdir(parents=True)
    (memory / "remote.jsonl").write_bytes(b'{"caption": "d"}\n')
    location = os.pathsep.join([str(bundled), str(extra), str(memory)])
    result = discover_shards(location)
    assert [(shard.key, Path(shard.path).parent.name) for shard in result.shards] == [
        ("coco", "extra"),
        ("remote", memory.name),
    ]
    both = f"{bundled / 'web.jsonl'}, {extra / 'web.jsonl'}"
    assert result.rejected == [
        (str(bundled / "web.jsonl"), f"shard key 'web' is claimed by several entries: {both}"),
        (str(extra / "web.jsonl"), f"shard key 'web' is claimed by several entries: {both}"),
    ]
    assert find_shard(location, "coco").path == str(extra / "coco.jsonl")
    with pytest.raises(ShardNotFoundError, match=r"rejected entries: .*web\.jsonl: shard key"):
        find_shard(location, "web")
    with pytest.raises(ShardLocationError, match=r"'.*nowhere' does not exist"):
        discover_shards(os.pathsep.join([str(bundled), str(tmp_path / "nowhere")]))
    with pytest.raises(ShardLocationError, match="names no directory"):
        discover_shards(os.pathsep)


def test_discovery_and_reading_over_an_fsspec_uri() -> None:
    root = UPath(f"memory:///paraclip-{uuid.uuid4().hex}")
    (root / "pairs").mkdir(parents=True)
    (root / "web.jsonl").write_bytes(b'{"caption": "a heron by a pond"}\n')
    (root / "pairs" / "captions.txt").write_bytes(b"a kite\n")
    (root / "pairs" / "img_ids.txt").write_bytes(b"k1\n")
    with (root / "laion.parquet").open("wb") as handle:
        pq.write_table(pa.table({"TEXT": ["a red tram"]}), handle)
    try:
        result = discover_shards(str(root))
        assert [shard.key for shard in result.shards] == ["laion", "pairs", "web"]
        assert result.rejected == []
        tables = [read_shard(shard) for shard in result.shards]
        assert [table.column(schema.TEXT).to_pylist() for table in tables] == [
            ["a red tram"],
            ["a kite"],
            ["a heron by a pond"],
        ]
        expected = hashlib.sha256(b'{"caption": "a heron by a pond"}\n').hexdigest()
        assert shard_content_hash(result.shards[2]) == expected
    finally:
        root.fs.rm(root.path, recursive=True)


def test_find_shard_by_key(tmp_path: Path) -> None:
    populated_location(tmp_path)
    assert find_shard(str(tmp_path), "web_001").format == "jsonl"
    with pytest.raises(ShardNotFoundError, match=r"available: authors_002, laion_000, web_001"):
        find_shard(str(tmp_path), "web_999")
    with pytest.raises(ShardNotFoundError, match=r"rejected entries: dup\.jsonl: shard key 'dup'"):
        find_shard(str(tmp_path), "dup")


def test_content_hash_of_a_file_is_its_sha256_and_follows_edits(tmp_path: Path) -> None:
    shard = laion_parquet(tmp_path, "hashme", {"TEXT": pa.array(["a dog"])})
    before = shard_content_hash(shard)
    assert before == sha256_file(Path(shard.path))
    assert shard_content_hash(shard) == before
    laion_parquet(tmp_path, "hashme", {"TEXT": pa.array(["a dog", "a cat"])})
    assert shard_content_hash(shard) != before


def test_content_hash_of_a_two_file_shard_covers_both_files(tmp_path: Path) -> None:
    shard = two_file(tmp_path, "pair", b"a\nb\n", b"1\n2\n")
    before = shard_content_hash(shard)
    assert shard_content_hash(shard) == before
    (Path(shard.path) / "img_ids.txt").write_bytes(b"1\n3\n")
    after_ids = shard_content_hash(shard)
    assert after_ids != before
    (Path(shard.path) / "captions.txt").write_bytes(b"a\nc\n")
    assert shard_content_hash(shard) not in {before, after_ids}


def test_moving_a_line_between_the_two_files_changes_the_hash(tmp_path: Path) -> None:
    first = two_file(tmp_path, "one", b"a\nb\n", b"c\n")
    second = two_file(tmp_path, "two", b"a\n", b"b\nc\n")
    assert shard_content_hash(first) != shard_content_hash(second)


# ---- bundled demo data ------------------------------------------------------------------


def test_bundled_demo_data_has_three_readable_shards_with_unique_ids() -> None:
    result = discover_shards(str(DEMO_DATA / "shards"))
    assert result.rejected == []
    assert [shard.format for shard in result.shards] == ["two_file", "laion_parquet", "jsonl"]
    tables = [read_shard(shard, image_root=str(DEMO_DATA / "images")) for shard in result.shards]
    assert sum(table.num_rows for table in tables) >= 300
    all_ids = [caption_id for t in tables for caption_id in t.column(schema.CAPTION_ID).to_pylist()]
    assert len(set(all_ids)) == len(all_ids)
    laion = tables[1]
    image_paths = [path for path in laion.column(schema.IMAGE_PATH).to_pylist() if path]
    assert len(image_paths) == 12
    assert {Path(path).parent for path in image_paths} == {DEMO_DATA / "images"}
    usable = sum(table.column(schema.INPUT_ISSUE).null_count for table in tables)
    assert usable >= 0.9 * len(all_ids)


def test_bundled_images_are_small_and_licensed() -> None:
    images = sorted((DEMO_DATA / "images").glob("*.jpg"))
    assert len(images) == 8
    licences = (DEMO_DATA / "images" / "LICENSES.md").read_text()
    for image_path in images:
        with Image.open(image_path) as image:
            assert max(image.size) <= 256
        assert image_path.name in licences
