"""Scratch directories that a killed process does not leak.

Streaming stages spill to temporary directories under the storage root's scratch dir: a
paraphrase step's texts and cache hits for its shard lookup (about 150 MB per 1M
captions), the filter's judged rows and dedup keys, caption ids' hash buckets.
``tempfile.TemporaryDirectory`` removes them when the block ends, but a kill -9 skips
that and nothing else ever would, so each killed stage left its spill behind for good.

A directory made here holds an exclusive ``flock`` on its ``OWNER`` file for as long as
its block runs (the kernel drops the lock when the process dies, however it dies), and
entering one sweeps the sibling directories whose owner lock is free. A directory
without an owner file (made by something else) is never touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

OWNER = ".owner"


def sweep_scratch(parent: Path) -> list[Path]:
    """Delete the directories under ``parent`` whose owner is gone; the ones deleted."""
    swept: list[Path] = []
    if not parent.is_dir():
        return swept
    for directory in sorted(parent.iterdir()):
        try:
            handle = open(directory / OWNER, "rb")  # noqa: SIM115 - held across the rmtree
        except OSError:  # no owner file, not a directory, not ours to read
            continue
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its owner is still at work
            shutil.rmtree(directory, ignore_errors=True)
            swept.append(directory)
    return swept


@contextlib.contextmanager
def scratch_directory(parent: Path, prefix: str) -> Iterator[Path]:
    """A temporary directory under ``parent``, removed at the end of the block, or by the
    next ``scratch_directory`` under ``parent`` after its process was killed."""
    parent.mkdir(parents=True, exist_ok=True)
    sweep_scratch(parent)
    with tempfile.TemporaryDirectory(prefix=prefix, dir=parent, ignore_cleanup_errors=True) as name:
        directory = Path(name)
        # Locked under another name, then renamed: a sweep never finds the owner file of a
        # live directory unlocked.
        staging = directory / f"{OWNER}.new"
        with open(staging, "wb") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            staging.rename(directory / OWNER)
            yield directory
