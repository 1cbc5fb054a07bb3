"""Shard keys: the Dagster dynamic partition key of each caption shard.

A shard key is the shard's file stem (``laion_demo_000.parquet`` -> ``laion_demo_000``)
or, for a two-file shard, its directory name. Keys end up in file names under the
storage root and in Dagster partition keys, so only a conservative ASCII alphabet is
allowed: ``[A-Za-z0-9][A-Za-z0-9._-]{0,127}`` without ``..``.
"""

from __future__ import annotations

import os
import re

from upath import UPath

MAX_SHARD_KEY_LENGTH = 128
ALLOWED_SHARD_KEY = "1-128 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit"
_SHARD_KEY_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class InvalidShardKeyError(ValueError):
    """A shard name that cannot be used as a partition key or storage file name."""


def _why_invalid(key: str) -> str | None:
    """Name the first problem with ``key``, or None when it is a valid shard key."""
    if not key:
        return "it is empty"
    if not key.isascii():
        return "it contains non-ASCII characters"
    if "/" in key or "\\" in key:
        return "it contains a path separator"
    if ".." in key:
        return "it contains '..'"
    if any(character.isspace() for character in key):
        return "it contains whitespace"
    if key.startswith("."):
        return "it is a hidden name (starts with '.')"
    if len(key) > MAX_SHARD_KEY_LENGTH:
        return f"it is {len(key)} characters long"
    if not _SHARD_KEY_PATTERN.fullmatch(key):
        return "it starts with or contains a character outside [A-Za-z0-9._-]"
    return None


def validate_shard_key(key: str) -> str:
    """Return ``key`` unchanged when it is a valid shard key, else raise InvalidShardKeyError."""
    reason = _why_invalid(key)
    if reason is not None:
        raise InvalidShardKeyError(
            f"invalid shard key {key!r}: {reason}; a shard key must be {ALLOWED_SHARD_KEY}, "
            "without '..'"
        )
    return key


def shard_key_from_path(path: str | os.PathLike[str]) -> str:
    """The validated shard key of a shard file (its stem) or two-file shard directory (its name)."""
    shard_path = UPath(path)
    key = shard_path.name if shard_path.is_dir() else shard_path.stem
    return validate_shard_key(key)
