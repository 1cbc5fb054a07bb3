"""Atomic writes: the target appears whole or not at all, and killed writers' leftovers go."""

import os
import time
from pathlib import Path

from paraclip_pipeline.storage import atomic_path, write_text_atomic


def test_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    write_text_atomic("old", target)
    try:
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    except RuntimeError:
        pass
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_stale_temporaries_of_a_killed_writer_are_removed_fresh_ones_kept(tmp_path: Path) -> None:
    target = tmp_path / "out.parquet"
    stale = tmp_path / ".out.parquet.abc123.tmp"
    fresh = tmp_path / ".out.parquet.def456.tmp"  # a concurrent writer, still at work
    other = tmp_path / ".other.parquet.abc123.tmp"
    for path in (stale, fresh, other):
        path.write_text("partial")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    os.utime(other, (two_hours_ago, two_hours_ago))
    write_text_atomic("whole", target)
    assert target.read_text() == "whole"
    assert not stale.exists()
    assert fresh.exists() and other.exists()
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() would, not mkstemp's 0600
