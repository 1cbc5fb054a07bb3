"""Checkpoint retention: keep the newest N checkpoints plus the pinned ones, delete the rest.

A checkpoint is ~183 MB (ViT-B-32 text tower, safetensors + HF export) and automation
writes one per change of the training data, so without retention the disk grows without
bound. Pinned, and never deleted: checkpoints the user pinned (``paraclip checkpoints pin``
writes a marker file into the directory) and the checkpoint the newest report evaluated.
Only finished checkpoints (a manifest.json) count; a training run's state or job files
beside them are never touched.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from paraclip_pipeline.modeling.checkpoint_format import MANIFEST_FILE
from paraclip_pipeline.storage import StorageLayout

PIN_FILE = ".pinned"


@dataclass(frozen=True)
class PruneResult:
    kept: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    freed_bytes: int = 0

    def summary(self) -> str:
        return (
            f"removed {len(self.removed)} checkpoint(s), freed {self.freed_bytes / 1e6:.1f} MB; "
            f"kept {len(self.kept)}"
        )


def checkpoints(layout: StorageLayout) -> list[Path]:
    """Finished checkpoint directories, newest first (by their manifest's mtime)."""
    manifests = [
        m
        for m in layout.checkpoints_dir.glob(f"*/{MANIFEST_FILE}")
        if not m.parent.name.startswith(".")
    ]
    return [m.parent for m in sorted(manifests, key=lambda m: m.stat().st_mtime_ns, reverse=True)]


def pin(checkpoint_dir: Path, reason: str = "pinned by the user") -> None:
    (Path(checkpoint_dir) / PIN_FILE).write_text(reason + "\n", encoding="utf-8")


def unpin(checkpoint_dir: Path) -> None:
    (Path(checkpoint_dir) / PIN_FILE).unlink(missing_ok=True)


def report_checkpoint(layout: StorageLayout) -> Path | None:
    """The checkpoint the newest report evaluated (its results.json names it)."""
    from paraclip_pipeline.evaluation.report import RESULTS_NAME

    results = sorted(
        layout.reports_dir.glob(f"*/{RESULTS_NAME}"), key=lambda p: p.stat().st_mtime_ns
    )
    for path in reversed(results):
        try:
            checkpoint = json.loads(path.read_text(encoding="utf-8"))["context"]["checkpoint"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a report from an older format pins nothing
        return Path(checkpoint).resolve()
    return None


def pinned(layout: StorageLayout) -> set[Path]:
    marked = {path.resolve() for path in checkpoints(layout) if (path / PIN_FILE).exists()}
    by_report = report_checkpoint(layout)
    return marked | ({by_report} if by_report else set())


def directory_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def prune_checkpoints(
    layout: StorageLayout, keep: int, protect: Iterable[Path] = ()
) -> PruneResult:
    """Delete every finished checkpoint except the newest ``keep``, the pinned ones and
    ``protect`` (a multi-seed run's checkpoints: its primary seed is written first, so
    with more seeds than ``keep`` it would otherwise be the one deleted)."""
    if keep < 1:
        raise ValueError(f"keep must be at least 1 (the newest checkpoint), got {keep}")
    keep_always = pinned(layout) | {Path(path).resolve() for path in protect}
    kept, removed, freed = [], [], 0
    for rank, directory in enumerate(checkpoints(layout)):
        if rank < keep or directory.resolve() in keep_always:
            kept.append(directory)
            continue
        size = directory_bytes(directory)
        # Rename first (atomic): a kill mid-delete leaves a hidden leftover, never a
        # half-deleted checkpoint that still looks finished.
        doomed = directory.with_name(f".{directory.name}.deleting")
        directory.rename(doomed)
        shutil.rmtree(doomed)
        removed.append(directory)
        freed += size
    return PruneResult(kept=kept, removed=removed, freed_bytes=freed)
