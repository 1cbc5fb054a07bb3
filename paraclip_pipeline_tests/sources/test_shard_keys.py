"""Shard key validation: what Dagster partitions and storage file names may be called."""

from pathlib import Path

import pytest

from paraclip_pipeline.sources import InvalidShardKeyError, shard_key_from_path, validate_shard_key


@pytest.mark.parametrize("key", ["a", "laion_demo_000", "A.b-c_9", "0" * 128, "v1.2"])
def test_valid_keys_are_returned_unchanged(key: str) -> None:
    assert validate_shard_key(key) == key


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("", "empty"),
        ("../x", "path separator"),
        ("a/b", "path separator"),
        ("a\\b", "path separator"),
        ("a..b", "'..'"),
        ("a b", "whitespace"),
        ("tab\there", "whitespace"),
        ("ünï", "non-ASCII"),
        (".hidden", "hidden"),
        ("-dash-first", "outside [A-Za-z0-9._-]"),
        ("a,b", "outside [A-Za-z0-9._-]"),
        ("x" * 129, "129 characters"),
    ],
)
def test_invalid_keys_say_why_and_what_is_allowed(key: str, reason: str) -> None:
    with pytest.raises(InvalidShardKeyError) as raised:
        validate_shard_key(key)
    message = str(raised.value)
    assert reason in message
    assert "ASCII letters, digits" in message
    assert isinstance(raised.value, ValueError)


def test_key_of_a_file_is_its_stem_and_of_a_directory_its_name(tmp_path: Path) -> None:
    shard_file = tmp_path / "laion_000.parquet"
    shard_file.write_bytes(b"")
    shard_dir = tmp_path / "authors.v2"
    shard_dir.mkdir()
    assert shard_key_from_path(shard_file) == "laion_000"
    assert shard_key_from_path(str(shard_dir)) == "authors.v2"


def test_key_from_a_badly_named_file_raises(tmp_path: Path) -> None:
    bad = tmp_path / "my shard.jsonl"
    bad.write_text("{}\n")
    with pytest.raises(InvalidShardKeyError, match="whitespace"):
        shard_key_from_path(bad)
