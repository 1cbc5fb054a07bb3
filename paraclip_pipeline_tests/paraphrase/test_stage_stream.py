"""StageRun fed batch by batch equals one whole-table run (issue 14)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from paraclip_pipeline.paraphrase.engine import StageRun, run_paraphrase_stage
from paraclip_pipeline_tests.paraphrase.builders import stage1_rows
from paraclip_pipeline_tests.paraphrase.test_engine import CONFIG, RecordingBackend

# Repeats across batch boundaries and a blank caption (skipped, never sent).
TEXTS = [f"caption number {index % 7}" for index in range(17)] + ["   "]


def _streamed(rows: pa.Table, stage: int, cache: Path, batch_rows: int) -> tuple[pa.Table, int]:
    backend = RecordingBackend(CONFIG)
    with StageRun(stage=stage, config=CONFIG, cache_dir=cache, backend=backend) as run:  # type: ignore[arg-type]
        parts = [
            run.process(rows.slice(start, batch_rows)) for start in range(0, len(rows), batch_rows)
        ]
        stats = run.stats()
    assert stats.rows == len(rows)
    return pa.concat_tables(parts).combine_chunks(), backend.calls


def test_batches_give_the_whole_table_result_and_call_each_text_once(tmp_path: Path) -> None:
    rows = stage1_rows(TEXTS, [None] * (len(TEXTS) - 1) + ["empty"])
    whole = run_paraphrase_stage(
        rows, stage=1, config=CONFIG, cache_dir=tmp_path / "whole", backend=RecordingBackend(CONFIG)
    ).table
    whole2 = run_paraphrase_stage(
        whole,
        stage=2,
        config=CONFIG,
        cache_dir=tmp_path / "whole",
        backend=RecordingBackend(CONFIG),
    ).table
    for batch_rows in (1, 4, 5):
        cache = tmp_path / f"batches-{batch_rows}"
        stage1, calls = _streamed(rows, 1, cache, batch_rows)
        assert stage1.equals(whole)
        assert calls == 7  # a text repeated in a later batch is a cache hit
        stage2, _ = _streamed(stage1, 2, cache, batch_rows)
        assert stage2.equals(whole2)
