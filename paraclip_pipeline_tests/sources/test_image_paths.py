"""Image paths: resolved against the image root (or the shard's directory), never outside it,
and every unusable path reported by reason instead of logged."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from paraclip_pipeline import schema
from paraclip_pipeline.sources import (
    IMAGE_ESCAPING,
    IMAGE_MISSING,
    IMAGE_NOT_A_PATH,
    ImagePathProblem,
    read_shard,
    read_shard_checked,
)
from paraclip_pipeline_tests.sources.builders import laion_parquet


def test_without_a_root_paths_resolve_in_the_shard_directory_and_problems_are_returned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shard_dir = tmp_path / "shards"
    (shard_dir / "imgs").mkdir(parents=True)
    (shard_dir / "imgs" / "cat.jpg").write_bytes(b"jpeg")
    (tmp_path / "outside.jpg").write_bytes(b"jpeg")
    paths = [
        "imgs/cat.jpg",
        "./imgs/../imgs/cat.jpg",
        str(shard_dir / "imgs" / "cat.jpg"),
        "../outside.jpg",
        "imgs/missing.jpg",
        "s3://bucket/cat.jpg",
        str(tmp_path / "outside.jpg"),
        "",
        None,
    ]
    shard = laion_parquet(
        shard_dir, "imgs_000", {"TEXT": ["a cat"] * len(paths), "image_path": paths}
    )
    with caplog.at_level(logging.DEBUG):
        read = read_shard_checked(shard)
    resolved = str(shard_dir / "imgs" / "cat.jpg")
    assert read.table.column(schema.IMAGE_PATH).to_pylist() == [resolved] * 3 + [None] * 6
    assert read.table.column(schema.INPUT_ISSUE).null_count == len(paths)
    assert read.image_base == str(shard_dir)
    assert read.image_problems == (
        ImagePathProblem(3, "../outside.jpg", IMAGE_ESCAPING),
        ImagePathProblem(4, "imgs/missing.jpg", IMAGE_MISSING),
        ImagePathProblem(5, "s3://bucket/cat.jpg", IMAGE_NOT_A_PATH),
        ImagePathProblem(6, str(tmp_path / "outside.jpg"), IMAGE_ESCAPING),
    )
    assert read.image_problem_counts() == {"not_a_path": 1, "escaping": 2, "missing": 1}
    assert str(read.image_problems[0]) == "row 3 '../outside.jpg': escaping"
    # The asset reports them as a run event; the reader writes nothing to the log.
    assert caplog.records == []
    assert read_shard(shard).equals(read.table)


def test_relative_paths_resolve_against_the_image_root_wherever_the_shard_lives(
    tmp_path: Path,
) -> None:
    """Issue 13: shards moved out of data/shards lost every image; with a root they do not."""
    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    (images / "dog.jpg").write_bytes(b"jpeg")
    (images / "sub" / "cat.jpg").write_bytes(b"jpeg")
    (tmp_path / "secret.jpg").write_bytes(b"jpeg")
    columns = {
        "TEXT": ["a dog", "a cat", "a secret", "absolute", "gone"],
        "image_path": [
            "dog.jpg",
            "sub/cat.jpg",
            "../secret.jpg",
            str(images / "dog.jpg"),
            "sub/gone.jpg",
        ],
    }
    expected = [str(images / "dog.jpg"), str(images / "sub" / "cat.jpg"), None]
    expected += [str(images / "dog.jpg"), None]
    for where in ("shards", "elsewhere/deeper"):
        (tmp_path / where).mkdir(parents=True)
        shard = laion_parquet(tmp_path / where, "moved", columns)
        read = read_shard_checked(shard, image_root=images)
        assert read.table.column(schema.IMAGE_PATH).to_pylist() == expected
        assert read.image_base == str(images)
        assert read.image_problem_counts() == {"not_a_path": 0, "escaping": 1, "missing": 1}
    # Without the root, the same names are looked up beside the shard and are missing.
    alone = read_shard_checked(laion_parquet(tmp_path / "shards", "alone", columns))
    assert alone.table.column(schema.IMAGE_PATH).null_count == 5
    assert alone.image_problem_counts() == {"not_a_path": 0, "escaping": 2, "missing": 3}


def test_bundled_demo_shard_keeps_its_images_with_the_default_root(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from paraclip_pipeline.settings import IMAGE_ROOT_ENV, REPO_ROOT, SHARDS_LOCATION_ENV, Settings
    from paraclip_pipeline.sources import find_shard

    monkeypatch.delenv(IMAGE_ROOT_ENV, raising=False)
    monkeypatch.delenv(SHARDS_LOCATION_ENV, raising=False)
    settings = Settings.from_env()
    assert settings.image_root == REPO_ROOT / "data" / "images"
    shard = find_shard(str(REPO_ROOT / "data" / "shards"), "laion_demo_000")
    read = read_shard_checked(shard, image_root=settings.image_root)
    assert len(read.table) - read.table.column(schema.IMAGE_PATH).null_count == 12
    assert read.image_problems == ()
