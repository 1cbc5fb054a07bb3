"""The per-shard assets stream (issue 14): any batch size gives the same files and data
versions as one batch, and no stage ever holds more than a batch of rows."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from paraclip_pipeline.asset_names import RAW_CAPTIONS, STAGE1_PARAPHRASES, STAGE2_PARAPHRASES
from paraclip_pipeline.defs.resources import ParaphraserResource, ShardSourceResource
from paraclip_pipeline.distributed.shard_steps import STEPS, StepOptions
from paraclip_pipeline.filtering import apply
from paraclip_pipeline.paraphrase.engine import StageRun
from paraclip_pipeline.sources.readers import shard as shard_reader
from paraclip_pipeline.storage import ParquetStreamWriter, table_fingerprint
from paraclip_pipeline_tests.defs.streaming import (
    STAGE_OUTPUTS,
    materialize_stages,
    rules_without_models,
    stage_files,
    use_cheap_rewriter,
    write_laion_shard,
)

KEY = "laion-0"


def _versions(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    return {
        event.asset_key.path[-1]: event.materialization.tags["dagster/data_version"]
        for event in result.get_asset_materialization_events()
    }


def test_any_batch_size_gives_the_same_files_and_data_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_cheap_rewriter(monkeypatch)
    shards = tmp_path / "shards"
    write_laion_shard(shards, KEY, 300)
    rules = rules_without_models(tmp_path)
    runs = {}
    with dg.instance_for_test() as instance:
        for batch_rows in (1 << 20, 7, 64):
            root = tmp_path / f"storage-{batch_rows}"
            result = materialize_stages(shards, root, KEY, batch_rows, rules, instance)
            assert result.success
            runs[batch_rows] = (_versions(result), stage_files(root, KEY))
    whole_versions, whole_files = runs[1 << 20]
    for name, path in whole_files.items():
        if name in whole_versions and name != "raw_captions":  # raw: the shard file's hash
            assert whole_versions[name] == table_fingerprint(pq.read_table(path)), name
    assert pq.read_table(whole_files["filtered_pairs_rejected"]).num_rows > 0
    for batch_rows in (7, 64):
        versions, files = runs[batch_rows]
        assert versions == whole_versions
        for name in STAGE_OUTPUTS:
            assert pq.read_table(files[name]).equals(pq.read_table(whole_files[name])), name
        assert not list((tmp_path / f"storage-{batch_rows}" / "scratch").rglob("*.parquet"))


def test_no_stage_holds_more_than_a_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 3,000-row shard in batches of 100: every stage function sees at most 100 rows."""
    use_cheap_rewriter(monkeypatch)
    batch_rows, rows = 100, 3000
    seen: dict[str, int] = {}

    def spy(name: str, target: object, attribute: str, rows_of: object) -> None:
        original = getattr(target, attribute)

        def wrapper(*args: object, **kwargs: object) -> object:
            seen[name] = max(seen.get(name, 0), rows_of(*args))  # type: ignore[operator]
            return original(*args, **kwargs)

        monkeypatch.setattr(target, attribute, wrapper)

    spy("read", shard_reader, "_table", lambda parsed, *rest: len(parsed.source_rows))
    spy("paraphrase", StageRun, "_answer", lambda run, table, *rest: table.num_rows)
    spy("filter", apply, "rule_verdicts", lambda frame, *rest: frame.height)
    spy("write", ParquetStreamWriter, "write", lambda writer, table: table.num_rows)
    shards = tmp_path / "shards"
    write_laion_shard(shards, KEY, rows)
    with dg.instance_for_test() as instance:
        result = materialize_stages(
            shards, tmp_path / "storage", KEY, batch_rows, rules_without_models(tmp_path), instance
        )
    assert result.success
    assert seen.keys() == {"read", "paraphrase", "filter", "write"}
    assert all(0 < largest <= batch_rows for largest in seen.values()), seen
    written = pq.read_metadata(stage_files(tmp_path / "storage", KEY)["stage2_paraphrases"])
    assert written.num_rows == rows and written.num_row_groups >= rows // batch_rows


def test_ray_ingest_and_paraphrase_steps_write_the_in_process_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Ray engine's ingest and paraphrase steps (plain functions: no cluster needed)
    stream a shard of several batches as the assets do: the same bytes and data versions,
    and the ingest never holds more than a batch."""
    use_cheap_rewriter(monkeypatch)
    shards, root, ray_root = tmp_path / "shards", tmp_path / "in-process", tmp_path / "ray"
    write_laion_shard(shards, KEY, 300)
    with dg.instance_for_test() as instance:
        result = materialize_stages(shards, root, KEY, 64, rules_without_models(tmp_path), instance)
    versions, files = _versions(result), stage_files(root, KEY)
    ray_files = stage_files(ray_root, KEY)
    options = StepOptions(
        storage_root=str(ray_root),
        batch_rows=64,
        location=str(shards),
        image_root=None,
        max_caption_chars=ShardSourceResource(location=str(shards)).max_caption_chars,
        paraphraser=ParaphraserResource().model_dump(exclude_none=True),
    )
    written: list[int] = []
    original_write = ParquetStreamWriter.write

    def counting_write(writer: ParquetStreamWriter, table: pa.Table) -> None:
        written.append(table.num_rows)
        original_write(writer, table)

    monkeypatch.setattr(ParquetStreamWriter, "write", counting_write)
    for step in (RAW_CAPTIONS, STAGE1_PARAPHRASES, STAGE2_PARAPHRASES):
        written.clear()
        record = STEPS[step](KEY, options)
        assert record["error"] is None and record["data_version"] == versions[step], step
        assert ray_files[step].read_bytes() == files[step].read_bytes(), step
        assert max(written) == 64 and sum(written) == 300, step  # streamed, 64 rows a batch
        assert pq.read_metadata(ray_files[step]).num_row_groups == 5  # 300 rows by 64
