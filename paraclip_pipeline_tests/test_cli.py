"""What `paraclip demo` prints about its data and its public benchmark results."""

import json
import os
from pathlib import Path

from paraclip_pipeline.cli import describe_data, describe_public_results
from paraclip_pipeline.sources import discover_shards
from paraclip_pipeline_tests.evaluation.public.test_guard import record
from paraclip_pipeline_tests.sources.builders import jsonl_bytes


def test_demo_names_every_shard_and_where_it_came_from(tmp_path: Path) -> None:
    bundled, coco = tmp_path / "shards", tmp_path / "coco_val2017"
    bundled.mkdir(), coco.mkdir()
    jsonl_bytes(bundled, "web", b'{"caption": "a"}\n')
    jsonl_bytes(coco, "captions", b'{"caption": "b", "file_name": "1.jpg"}\n')
    location = os.pathsep.join([str(bundled), str(coco)])
    text = describe_data(location, discover_shards(location).shards)
    assert text.splitlines()[0] == f"caption shards from {location}:"
    assert f"captions                 jsonl          {coco / 'captions.jsonl'}" in text
    assert str(bundled / "web.jsonl") in text


def test_demo_prints_the_public_table_and_the_check_verdict(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    results.write_text(
        json.dumps({"public_benchmarks": [record("paws", "paws/dev.tsv", "AP", -0.6)]})
    )
    text = describe_public_results(results, "FAILED: 1 of 1 dev metrics dropped")
    assert "paws/dev.tsv  AP      50.00     49.40  -0.60" in text
    assert text.endswith("dev-regression check: FAILED: 1 of 1 dev metrics dropped")
    results.write_text(json.dumps({"public_benchmarks": []}))
    assert "none scored" in describe_public_results(results, None)
