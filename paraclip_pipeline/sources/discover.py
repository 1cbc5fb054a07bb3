"""Find caption shards in a directory (local path or any fsspec/UPath URI).

Every entry directly inside the location ends up in exactly one of two lists of the
returned :class:`DiscoveryResult`:

* ``shards``: ``*.parquet`` (LAION metadata), ``*.jsonl``, or a subdirectory holding
  both ``captions.txt`` and ``img_ids.txt`` (the ParaCLIP authors' two-file release);
* ``rejected``: ``(entry name, reason)`` for everything else - invalid shard keys,
  hidden entries, unsupported file types, half two-file directories, and every entry
  of a group that claims the same key (``a.parquet`` + ``a.jsonl``).

Nothing is skipped silently, and one bad file does not hide the good ones: the caller
(the partition sensor) registers ``shards`` and reports ``rejected``.

A location string may name several directories separated by ``os.pathsep`` (the demo's
bundled shards plus the COCO captions beside the repository); the ``:`` of a URI scheme
(``s3://``) is not a separator. Their entries are pooled: a shard key claimed in two
directories is rejected in both, like two claimants in one.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Literal

from upath import UPath

from paraclip_pipeline.sources.shard_keys import InvalidShardKeyError, validate_shard_key

ShardFormat = Literal["laion_parquet", "jsonl", "two_file"]

TWO_FILE_CAPTIONS = "captions.txt"
TWO_FILE_IDS = "img_ids.txt"
_FORMAT_BY_SUFFIX: dict[str, ShardFormat] = {".parquet": "laion_parquet", ".jsonl": "jsonl"}
# os.pathsep between locations, except the one of a URI scheme ("s3://bucket").
_LOCATION_SEPARATOR = re.compile(re.escape(os.pathsep) + "(?!//)")


class ShardLocationError(ValueError):
    """The shard location does not exist or is not a directory."""


class ShardNotFoundError(LookupError):
    """No valid shard with the requested key exists at the location."""


@dataclass(frozen=True)
class ShardFile:
    """One caption shard: ``path`` is a file, or the directory of a two-file shard."""

    key: str
    path: str
    format: ShardFormat


@dataclass(frozen=True)
class DiscoveryResult:
    shards: list[ShardFile] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)


def _classify(entry: UPath) -> ShardFile | str:
    """A ShardFile for a usable entry, or the reason it is not one."""
    if entry.name.startswith("."):
        return "hidden entry"
    if entry.is_dir():
        present = {name for name in (TWO_FILE_CAPTIONS, TWO_FILE_IDS) if (entry / name).is_file()}
        if not present:
            return (
                f"directory holds neither {TWO_FILE_CAPTIONS} nor {TWO_FILE_IDS}, "
                "so it is not a two-file shard"
            )
        if len(present) == 1:
            (missing,) = {TWO_FILE_CAPTIONS, TWO_FILE_IDS} - present
            return f"two-file shard directory is missing {missing}"
        shard_format: ShardFormat = "two_file"
        key_candidate = entry.name
    else:
        suffix_format = _FORMAT_BY_SUFFIX.get(entry.suffix.lower())
        if suffix_format is None:
            return (
                f"unsupported file type {entry.suffix or '(no extension)'!r}; expected .parquet, "
                f".jsonl or a directory holding {TWO_FILE_CAPTIONS} and {TWO_FILE_IDS}"
            )
        shard_format = suffix_format
        key_candidate = entry.stem
    try:
        key = validate_shard_key(key_candidate)
    except InvalidShardKeyError as error:
        return str(error)
    return ShardFile(key=key, path=str(entry), format=shard_format)


def split_locations(location: str) -> list[str]:
    """The directories named by a location string (see the module docstring)."""
    locations = [part for part in _LOCATION_SEPARATOR.split(location) if part.strip()]
    if not locations:
        raise ShardLocationError(f"shard location {location!r} names no directory")
    return locations


def discover_shards(location: str) -> DiscoveryResult:
    """List the shards directly inside ``location`` (one directory or several separated by
    ``os.pathsep``), sorted by key (see the module docstring)."""
    locations = split_locations(location)
    candidates: dict[str, list[tuple[str, ShardFile]]] = defaultdict(list)
    rejected: list[tuple[str, str]] = []
    for one_location in locations:
        root = UPath(one_location).absolute()  # shard paths survive a change of directory
        if not root.is_dir():
            raise ShardLocationError(
                f"shard location {one_location!r} does not exist or is not a directory"
            )
        for entry in root.iterdir():
            # Several locations: an entry is named by its path, its name alone is ambiguous.
            name = entry.name if len(locations) == 1 else str(entry)
            outcome = _classify(entry)
            if isinstance(outcome, str):
                rejected.append((name, outcome))
            else:
                candidates[outcome.key].append((name, outcome))
    shards: list[ShardFile] = []
    for key, claimants in candidates.items():
        if len(claimants) == 1:
            shards.append(claimants[0][1])
            continue
        names = sorted(name for name, _ in claimants)
        rejected.extend(
            (name, f"shard key {key!r} is claimed by several entries: {', '.join(names)}")
            for name in names
        )
    return DiscoveryResult(
        shards=sorted(shards, key=lambda shard: shard.key), rejected=sorted(rejected)
    )


def find_shard(location: str, key: str) -> ShardFile:
    """The shard with ``key`` at ``location`` (how an asset turns its partition key into a file)."""
    result = discover_shards(location)
    for shard in result.shards:
        if shard.key == key:
            return shard
    hint = "; ".join(
        f"{name}: {reason}"
        for name, reason in result.rejected
        if name.rsplit("/", 1)[-1].startswith(key)
    )
    available = ", ".join(shard.key for shard in result.shards) or "none"
    raise ShardNotFoundError(
        f"no shard with key {key!r} at {location!r} (available: {available})"
        + (f"; rejected entries: {hint}" if hint else "")
    )


def _file_sha256(path: UPath) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def shard_content_hash(shard: ShardFile) -> str:
    """sha256 hex of the shard's bytes: the Dagster data version of ``raw_captions``.

    A file shard hashes its bytes. A two-file shard hashes the lines
    ``captions.txt:<sha256>`` and ``img_ids.txt:<sha256>`` (in that order), so moving
    a line from one file to the other cannot keep the hash.
    """
    path = UPath(shard.path)
    if shard.format != "two_file":
        return _file_sha256(path)
    manifest = "".join(
        f"{name}:{_file_sha256(path / name)}\n" for name in (TWO_FILE_CAPTIONS, TWO_FILE_IDS)
    )
    return hashlib.sha256(manifest.encode("ascii")).hexdigest()
