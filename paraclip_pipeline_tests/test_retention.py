"""Checkpoint retention: newest N plus pinned ones survive, and the freed size is reported."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from paraclip_pipeline import retention
from paraclip_pipeline.cli import main
from paraclip_pipeline.modeling.checkpoint_format import MANIFEST_FILE
from paraclip_pipeline.storage import StorageLayout


def _checkpoint(layout: StorageLayout, name: str, age_s: int, size: int = 1000) -> Path:
    directory = layout.checkpoints_dir / name
    directory.mkdir(parents=True)
    (directory / "model.safetensors").write_bytes(b"w" * size)
    manifest = directory / MANIFEST_FILE
    manifest.write_text("{}", encoding="utf-8")
    os.utime(manifest, (1_700_000_000 - age_s, 1_700_000_000 - age_s))
    return directory


def test_prune_keeps_newest_and_pinned(tmp_path: Path) -> None:
    layout = StorageLayout(tmp_path)
    dirs = [_checkpoint(layout, f"run-{i}", age_s=i * 100) for i in range(6)]  # run-0 newest
    retention.pin(dirs[5])
    # The newest report evaluated run-4.
    report = layout.reports_dir / "report-run" / "results.json"
    report.parent.mkdir(parents=True)
    report.write_text(json.dumps({"context": {"checkpoint": str(dirs[4])}}), encoding="utf-8")
    state = layout.checkpoints_dir / "run-9.train-state"  # an unfinished run: never touched
    state.mkdir()

    result = retention.prune_checkpoints(layout, keep=2)
    assert sorted(p.name for p in result.removed) == ["run-2", "run-3"]
    assert sorted(p.name for p in result.kept) == ["run-0", "run-1", "run-4", "run-5"]
    assert result.freed_bytes == 2 * (1000 + 2)
    assert state.is_dir() and not any(
        p.name.startswith(".") for p in layout.checkpoints_dir.iterdir()
    )
    assert "freed 0.0 MB" in result.summary()
    with pytest.raises(ValueError, match="at least 1"):
        retention.prune_checkpoints(layout, keep=0)


def test_prune_protects_every_seed_of_the_run_just_trained(tmp_path: Path) -> None:
    # A three-seed run writes its primary seed first, so by age it ranks behind the others.
    layout = StorageLayout(tmp_path)
    primary = _checkpoint(layout, "run", age_s=30)
    seeds = [_checkpoint(layout, f"run-seed{s}", age_s=age) for s, age in ((5, 20), (7, 10))]
    old = _checkpoint(layout, "older-run", age_s=1000)

    result = retention.prune_checkpoints(layout, keep=1, protect=[primary, *seeds])
    assert [p.name for p in result.removed] == [old.name]
    assert primary.is_dir() and all(path.is_dir() for path in seeds)


def test_cli_prune_and_pin_by_run_id_prefix(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("PARACLIP_STORAGE_ROOT", str(tmp_path))
    layout = StorageLayout(tmp_path)
    for i in range(3):
        _checkpoint(layout, f"abcd{i}000-run", age_s=i * 100, size=500_000)
    assert main(["checkpoints", "pin", "abcd2"]) == 0
    assert main(["checkpoints", "prune", "--keep", "1"]) == 0
    assert "removed 1 checkpoint(s), freed 0.5 MB; kept 2" in capsys.readouterr().out
    assert main(["checkpoints", "list"]) == 0
    listed = capsys.readouterr().out
    assert "abcd2000-run  0.5 MB  pinned" in listed and "abcd1000-run" not in listed
