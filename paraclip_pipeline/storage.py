"""Storage root layout and atomic file writes.

Everything the pipeline produces lives under one root (``PARACLIP_STORAGE_ROOT``,
default ``./storage``) so a user can delete, back up or mount it as a unit.
Writes go to a temporary sibling and are renamed into place, so a kill in the
middle of a write never leaves a half-written file that looks finished.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

STORAGE_ROOT_ENV = "PARACLIP_STORAGE_ROOT"
DEFAULT_STORAGE_ROOT = "storage"


@dataclass(frozen=True)
class StorageLayout:
    """Where each kind of output lives under the storage root."""

    root: Path

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster_home"

    def asset_dir(self, asset_name: str) -> Path:
        return self.root / "assets" / asset_name

    def partition_file(self, asset_name: str, partition_key: str, suffix: str = ".parquet") -> Path:
        return self.asset_dir(asset_name) / f"{partition_key}{suffix}"

    @property
    def paraphrase_cache_dir(self) -> Path:
        return self.root / "cache" / "paraphrase"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"


STALE_TEMPORARY_S = 3600.0


def remove_stale_temporaries(target: Path, older_than_s: float = STALE_TEMPORARY_S) -> None:
    """Delete temporaries of ``target`` left by a writer that was killed before its rename.

    Only old ones: a fresh temporary may belong to a concurrent writer still at work.
    """
    cutoff = time.time() - older_than_s
    for leftover in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink()


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    The temporary file sits in the same directory so the final ``os.replace`` is an
    atomic rename on one filesystem. On any exception the temporary file is removed
    and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600; give the final file the mode a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as error:
        # A full disk (ENOSPC) names no file by itself; say which output was not written.
        error.add_note(f"while writing {target} (its previous contents are unchanged)")
        raise
    finally:
        tmp.unlink(missing_ok=True)


def write_parquet_atomic(table: pa.Table, target: Path) -> Path:
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return Path(target)


def write_bytes_atomic(data: bytes, target: Path) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_text_atomic(text: str, target: Path) -> Path:
    return write_bytes_atomic(text.encode("utf-8"), target)


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks so large shards stay out of memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def table_fingerprint(table: pa.Table) -> str:
    """Content hash of an Arrow table, independent of chunking and file encoding.

    Used as the Dagster data version of per-shard tables, so a rerun that produces
    the same rows does not make anything downstream look stale.
    """
    digest = hashlib.sha256()
    digest.update(table.schema.to_string(show_schema_metadata=False).encode())
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table.combine_chunks())
    digest.update(sink.getvalue().to_pybytes())
    return digest.hexdigest()
