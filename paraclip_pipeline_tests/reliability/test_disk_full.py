"""Disk full (ENOSPC) mid-write: a clear error, the old file intact, no temp files left."""

from __future__ import annotations

import errno
import os
import traceback
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from paraclip_pipeline.paraphrase.backends.base import (
    Completion,
    ParaphraseBackend,
    ParaphraseRequest,
)
from paraclip_pipeline.paraphrase.config import ParaphraserConfig
from paraclip_pipeline.paraphrase.engine import run_paraphrase_stage
from paraclip_pipeline.storage import StorageLayout, write_parquet_atomic
from paraclip_pipeline_tests.defs.support import Pipeline
from paraclip_pipeline_tests.paraphrase.builders import stage1_rows
from paraclip_pipeline_tests.reliability.support import failure_text, run_shard_job, temp_files

REAL_WRITE_TABLE = pq.write_table


def fill_disk_after(monkeypatch: pytest.MonkeyPatch, good_writes: int) -> None:
    """Parquet writes after the first ``good_writes`` get half-way, then hit ENOSPC; a
    streamed file (``ParquetWriter``) counts each batch as a write."""
    writes = 0
    inside_write_table = False
    real_batch_write = pq.ParquetWriter.write_table

    def write_batch(writer: pq.ParquetWriter, table: pa.Table, *args: object, **kw: object) -> None:
        nonlocal writes
        if inside_write_table:  # pq.write_table's own writer: counted there
            real_batch_write(writer, table, *args, **kw)
            return
        writes += 1
        if writes <= good_writes:
            real_batch_write(writer, table, *args, **kw)
            return
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pq.ParquetWriter, "write_table", write_batch)

    def write_table(table: pa.Table, where: object, **options: object) -> None:
        nonlocal writes
        writes += 1
        if writes <= good_writes:
            nonlocal inside_write_table
            inside_write_table = True
            try:
                REAL_WRITE_TABLE(table, where, **options)
            finally:
                inside_write_table = False
            return
        Path(str(where)).write_bytes(b"PAR1" + b"\0" * 4096)  # the bytes that did fit
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pq, "write_table", write_table)


def test_disk_full_keeps_the_previous_file_and_names_the_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "assets" / "raw_captions" / "shard-a.parquet"
    write_parquet_atomic(pa.table({"x": [1, 2, 3]}), target)
    before = target.read_bytes()
    fill_disk_after(monkeypatch, good_writes=0)

    with pytest.raises(OSError) as caught:
        write_parquet_atomic(pa.table({"x": [4, 5]}), target)

    assert caught.value.errno == errno.ENOSPC
    shown = "".join(traceback.format_exception_only(caught.value))
    assert "No space left on device" in shown
    assert f"while writing {target} (its previous contents are unchanged)" in shown
    assert target.read_bytes() == before
    assert temp_files(target.parent) == []


class Rewriter(ParaphraseBackend):
    name = "rewriter"
    default_model = "rewriter-v1"

    def _generate(self, requests: Sequence[ParaphraseRequest]) -> list[Completion]:
        return [Completion(text=f"a photo of {request.text}") for request in requests]


def test_disk_full_mid_stage_keeps_committed_chunks_and_the_rerun_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = ParaphraserConfig(chunk_size=3)
    rows = stage1_rows([f"a red boat number {index}" for index in range(7)])
    fill_disk_after(monkeypatch, good_writes=2)  # identity file is text: chunks 1-2 fit
    first = Rewriter(config)
    with pytest.raises(OSError, match="No space left on device"):
        run_paraphrase_stage(rows, stage=1, config=config, cache_dir=tmp_path, backend=first)
    chunk_files = sorted(tmp_path.rglob("chunk-*.parquet"))
    assert len(chunk_files) == 2 and temp_files(tmp_path) == []
    assert all(len(pq.read_table(path)) == 3 for path in chunk_files)

    monkeypatch.undo()  # space freed
    second = Rewriter(config)
    result = run_paraphrase_stage(rows, stage=1, config=config, cache_dir=tmp_path, backend=second)
    assert second.calls == 1  # only the row whose chunk hit the full disk
    assert result.table.column("status_1").to_pylist() == ["ok"] * 7


def test_disk_full_in_the_io_manager_fails_the_run_and_keeps_the_last_outputs(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline.relax_pass_rate()
    assert run_shard_job(pipeline, "shard-a").success
    layout = StorageLayout(pipeline.settings.storage_root)
    raw_file = layout.partition_file("raw_captions", "shard-a")
    outputs = sorted((layout.root / "assets").rglob("shard-a.parquet"))
    before = {path: path.read_bytes() for path in outputs}

    shard = Path(pipeline.settings.shards_location) / "shard-a.jsonl"
    shard.write_bytes(shard.read_bytes() + b'{"id": "new", "caption": "a new caption"}\n')
    fill_disk_after(monkeypatch, good_writes=0)
    result = run_shard_job(pipeline, "shard-a")

    assert not result.success
    message = failure_text(result)
    assert "No space left on device" in message
    assert f"while writing {raw_file}" in message
    assert {path: path.read_bytes() for path in outputs} == before
    assert temp_files(layout.root) == []
