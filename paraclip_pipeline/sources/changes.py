"""Which caption shards are new or changed since the last scan.

A scan lists the shard location (unavoidable: new files can only be found by listing)
but hashes only shards that are unknown or whose modification time is at or past the
watermark of the previous scan, so a directory of thousands of unchanged shards costs
one listing and no reads. A changed mtime with identical bytes is not a change: the
content hash, compared with the hash recorded at the last materialization, decides.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

from upath import UPath

from paraclip_pipeline.sources.discover import ShardFile, discover_shards, shard_content_hash


@dataclass(frozen=True)
class ScanCursor:
    """What the previous scan saw: the modification-time watermark (ns) of the newest
    shard, the rejected entries already reported (so a bad file name is logged once, not
    every tick) and the newest quarantine the sensor has reported (an event-log storage id).
    """

    watermark_ns: int = 0
    rejected: tuple[str, ...] = ()
    quarantine_storage_id: int = 0

    def serialize(self) -> str:
        return json.dumps(
            {
                "watermark_ns": self.watermark_ns,
                "rejected": list(self.rejected),
                "quarantine_storage_id": self.quarantine_storage_id,
            }
        )

    @classmethod
    def parse(cls, raw: str | None) -> ScanCursor:
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
            return cls(
                watermark_ns=int(data["watermark_ns"]),
                rejected=tuple(str(name) for name in data.get("rejected", [])),
                quarantine_storage_id=int(data.get("quarantine_storage_id", 0)),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            # A cursor from an older format only costs one full rescan.
            return cls()


@dataclass(frozen=True)
class ShardScan:
    # (shard, content hash, mtime ns): the mtime makes a run key unique even when a shard
    # is put back to contents it had before.
    new: list[tuple[ShardFile, str, int]] = field(default_factory=list)
    changed: list[tuple[ShardFile, str, int]] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    # Rejected entries the previous scan had not reported yet.
    newly_rejected: list[tuple[str, str]] = field(default_factory=list)
    # Registered shards whose file is gone (to retire); empty when the location lists no
    # shard at all, which looks like an unmounted location rather than removed files.
    removed: list[str] = field(default_factory=list)
    cursor: ScanCursor = ScanCursor()

    @property
    def due(self) -> list[tuple[ShardFile, str, int]]:
        return [*self.new, *self.changed]


def shard_mtime_ns(shard: ShardFile) -> int:
    """Newest modification time of the shard's file(s), in nanoseconds."""
    path = UPath(shard.path)
    paths: Iterable[UPath] = (
        [path / "captions.txt", path / "img_ids.txt"] if shard.format == "two_file" else [path]
    )
    if path.protocol in ("", "file", "local"):
        return max(os.stat(p.path).st_mtime_ns for p in paths)
    return max(int(p.stat().st_mtime * 1e9) for p in paths)


def scan_for_changes(
    location: str,
    *,
    known_keys: set[str],
    recorded_hashes: Callable[[list[str]], Mapping[str, str | None]],
    cursor: ScanCursor,
) -> ShardScan:
    """Compare the shard location with what Dagster already knows.

    ``known_keys`` are the registered partitions; ``recorded_hashes(keys)`` returns the
    content hash recorded at each key's last materialization (None when never built).
    """
    discovery = discover_shards(location)
    watermark = cursor.watermark_ns
    candidates: list[tuple[ShardFile, int]] = []
    newest = watermark
    for shard in discovery.shards:
        mtime = shard_mtime_ns(shard)
        newest = max(newest, mtime)
        if shard.key not in known_keys or mtime >= watermark:
            candidates.append((shard, mtime))
    recorded = recorded_hashes([shard.key for shard, _ in candidates if shard.key in known_keys])
    new: list[tuple[ShardFile, str, int]] = []
    changed: list[tuple[ShardFile, str, int]] = []
    for shard, mtime in candidates:
        content_hash = shard_content_hash(shard)
        if shard.key not in known_keys:
            new.append((shard, content_hash, mtime))
        elif recorded.get(shard.key) != content_hash:
            changed.append((shard, content_hash, mtime))
    present = {shard.key for shard in discovery.shards}
    reported = set(cursor.rejected)
    return ShardScan(
        new=new,
        changed=changed,
        rejected=list(discovery.rejected),
        newly_rejected=[(name, why) for name, why in discovery.rejected if name not in reported],
        removed=sorted(known_keys - present) if present else [],
        cursor=replace(
            cursor,
            watermark_ns=newest,
            rejected=tuple(sorted(name for name, _ in discovery.rejected)),
        ),
    )
