"""kill -9 in the middle of stage 1, filtering and training, then a rerun: nothing lost.

Each case runs the real plain modules in a child process (``workers.py``), SIGKILLs it
once durable partial state is on disk, reruns it to completion and compares the result
with an uninterrupted run in another directory.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from paraclip_pipeline import schema
from paraclip_pipeline.modeling.checkpoint_format import WEIGHTS_FILE
from paraclip_pipeline.modeling.factory import load_clip
from paraclip_pipeline.modeling.profiles import get_profile
from paraclip_pipeline.settings import REPO_ROOT
from paraclip_pipeline.sources import find_shard, read_shard
from paraclip_pipeline.training.checkpoint import state_root_for
from paraclip_pipeline_tests.defs.support import SHARD_CAPTIONS
from paraclip_pipeline_tests.paraphrase.server_process import fake_server
from paraclip_pipeline_tests.reliability.support import (
    kill_when,
    run_worker,
    start_worker,
    temp_files,
)
from paraclip_pipeline_tests.training.support import make_embeddings, make_pairs

# Nine of the e2e captions, a duplicate and a blank one: every status path in one shard.
CAPTIONS = [*SHARD_CAPTIONS["shard-a"][:9], SHARD_CAPTIONS["shard-a"][0], "   "]


def _raw_captions(tmp_path: Path) -> Path:
    shard_dir = tmp_path / "shards"
    shard_dir.mkdir()
    lines = [json.dumps({"id": f"k-{i}", "caption": c}) for i, c in enumerate(CAPTIONS)]
    (shard_dir / "shard-k.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    table = read_shard(find_shard(str(shard_dir), "shard-k"))
    path = tmp_path / "raw.parquet"
    pq.write_table(table, path)
    return path


def _chunks(cache_dir: Path) -> list[Path]:
    return sorted(cache_dir.rglob("chunk-*.parquet"))


def test_kill9_mid_stage1_then_rerun_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    raw = _raw_captions(tmp_path)
    reference_out = tmp_path / "reference.parquet"
    run_worker("paraphrase", str(raw), str(tmp_path / "reference-cache"), str(reference_out))

    cache, out = tmp_path / "cache", tmp_path / "out" / "stage2.parquet"
    worker = start_worker("paraphrase", str(raw), str(cache), str(out), pause_s=0.5)
    # Two of stage 1's five chunks of (deduplicated) captions are committed: kill.
    kill_when(worker, lambda: len(_chunks(cache)) >= 2)
    committed = {path.name: path.read_bytes() for path in _chunks(cache)}
    assert 2 <= len(committed) < len(_chunks(tmp_path / "reference-cache"))
    assert not out.exists()

    run_worker("paraphrase", str(raw), str(cache), str(out))
    expected, actual = pq.read_table(reference_out), pq.read_table(out)
    assert (
        actual.column(schema.CAPTION_ID).to_pylist()
        == pq.read_table(raw).column(schema.CAPTION_ID).to_pylist()
    )
    assert actual.equals(expected)
    # Chunks committed before the kill were reused untouched, none was written twice.
    final = {path.name: path.read_bytes() for path in _chunks(cache)}
    assert set(final) == {path.name for path in _chunks(tmp_path / "reference-cache")}
    assert all(final[name] == data for name, data in committed.items())


def test_kill9_mid_http_window_loses_at_most_one_chunk(tmp_path: Path) -> None:
    """The sliding-window client killed with requests in flight: the rerun repeats only
    what was not committed, and the output equals an uninterrupted run's."""
    rows = pa.table(
        {
            schema.CAPTION_ID: [f"h{i:04d}" for i in range(300)],
            schema.SHARD: ["shard-h"] * 300,
            schema.TEXT: [f"a boat on a lake, view {i}" for i in range(300)],
            schema.INPUT_ISSUE: pa.nulls(300, pa.string()),
        }
    )
    raw = tmp_path / "raw.parquet"
    pq.write_table(rows, raw)
    cache, out = tmp_path / "cache", tmp_path / "out.parquet"
    chunk_size, concurrency = 4, 8  # as in workers.paraphrase_http
    with fake_server(0.05, latency_sigma=1.0) as server:
        reference = tmp_path / "reference.parquet"
        run_worker(
            "paraphrase_http",
            str(raw),
            str(tmp_path / "ref-cache"),
            str(reference),
            server.base_url,
        )
        answered_before = httpx.get(f"{server.base_url}/stats").json()["answered"]

        worker = start_worker("paraphrase_http", str(raw), str(cache), str(out), server.base_url)
        kill_when(worker, lambda: len(_chunks(cache)) >= 5)
        committed = pq.read_table(_chunks(cache)).num_rows
        answered = httpx.get(f"{server.base_url}/stats").json()["answered"] - answered_before
        # Answered but not committed: at most one open chunk plus the requests in flight.
        assert committed < len(rows) and answered - committed <= chunk_size + concurrency

        rerun = json.loads(
            run_worker("paraphrase_http", str(raw), str(cache), str(out), server.base_url)
        )
    assert rerun["calls"] == len(rows) - committed  # nothing committed is asked again
    assert pq.read_table(out).equals(pq.read_table(reference))


def _stage2_pairs(tmp_path: Path) -> Path:
    raw = _raw_captions(tmp_path)
    stage2 = tmp_path / "stage2.parquet"
    run_worker("paraphrase", str(raw), str(tmp_path / "cache"), str(stage2))
    extra = pq.read_table(raw).select([schema.CAPTION_ID, schema.NSFW, schema.INPUT_ISSUE])
    pairs = pq.read_table(stage2).join(extra, schema.CAPTION_ID).sort_by(schema.CAPTION_ID)
    path = tmp_path / "pairs.parquet"
    pq.write_table(pairs, path)
    return path


def _rules_without_the_encoder(tmp_path: Path) -> Path:
    """The shipped rules, minus the MiniLM rule (its model load would dominate the test)."""
    rules = yaml.safe_load((REPO_ROOT / "data" / "filter_rules.yaml").read_text(encoding="utf-8"))
    for rule in rules["rules"]:
        if rule["name"] == "meaning_kept":
            rule["enabled"] = False
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    return path


def test_kill9_mid_filter_write_then_rerun_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    pairs, rules = _stage2_pairs(tmp_path), _rules_without_the_encoder(tmp_path)
    reference, out = tmp_path / "reference", tmp_path / "filtered"
    run_worker("filter", str(pairs), str(rules), str(reference))

    worker = start_worker("filter", str(pairs), str(rules), str(out), pause_s=30)
    # Rejected rows are published; the kept file is fully written but not yet renamed.
    kill_when(worker, lambda: (out / "rejected.parquet").exists() and bool(temp_files(out)))
    assert not (out / "kept.parquet").exists()

    run_worker("filter", str(pairs), str(rules), str(out))
    for name in ("kept.parquet", "rejected.parquet"):
        assert pq.read_table(out / name).equals(pq.read_table(reference / name))
    kept, rejected = pq.read_table(out / "kept.parquet"), pq.read_table(out / "rejected.parquet")
    ids = [*kept[schema.CAPTION_ID].to_pylist(), *rejected[schema.CAPTION_ID].to_pylist()]
    assert sorted(ids) == sorted(pq.read_table(pairs)[schema.CAPTION_ID].to_pylist())
    # The kill left the unrenamed temp file behind: hidden, never read as output.
    leftovers = temp_files(out)
    assert all(path.name.startswith(".kept.parquet.") for path in leftovers)


@pytest.mark.slow
def test_kill9_mid_training_then_rerun_gives_identical_weights(tmp_path: Path) -> None:
    clip = load_clip(get_profile("tiny-random"))
    pairs = make_pairs(24)
    pairs_path, embeddings_path = tmp_path / "pairs.parquet", tmp_path / "embeddings.parquet"
    pq.write_table(pairs, pairs_path)
    pq.write_table(make_embeddings(pairs, clip.model_id, clip.embed_dim), embeddings_path)

    reference = json.loads(
        run_worker("train", str(pairs_path), str(embeddings_path), str(tmp_path / "reference"))
    )
    output_dir = tmp_path / "run"
    worker = start_worker(
        "train", str(pairs_path), str(embeddings_path), str(output_dir), pause_s=1.0
    )
    state_root = state_root_for(output_dir)
    kill_when(worker, lambda: any(state_root.glob("step-00000002")))
    assert not (output_dir / WEIGHTS_FILE).exists()

    resumed = json.loads(
        run_worker("train", str(pairs_path), str(embeddings_path), str(output_dir))
    )
    assert resumed["weights_sha256"] == reference["weights_sha256"]
    assert (output_dir / WEIGHTS_FILE).read_bytes() == (
        tmp_path / "reference" / WEIGHTS_FILE
    ).read_bytes()
    assert not state_root.exists()


@pytest.mark.slow  # three Dagster processes: about a minute
def test_kill9_mid_stream_then_rerun_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    """Killed while stage 2 streams its batches into a temp file (raw captions and stage 1
    published): the rerun writes every per-shard file equal to an uninterrupted run's,
    with the same data versions."""
    from paraclip_pipeline_tests.defs.streaming import (
        STAGE_OUTPUTS,
        rules_without_models,
        stage_files,
        write_laion_shard,
    )

    shards, rules, key = tmp_path / "shards", rules_without_models(tmp_path), "laion-k"
    write_laion_shard(shards, key, 400)
    reference_root, root = tmp_path / "reference", tmp_path / "storage"
    args = (str(shards), str(reference_root), key, str(rules), "50")
    reference = json.loads(run_worker("stream_stages", *args).splitlines()[-1])

    worker = start_worker(
        "stream_stages", str(shards), str(root), key, str(rules), "50", pause_s=0.2
    )
    stage2_dir = root / "assets" / "stage2_paraphrases"
    kill_when(worker, lambda: bool(temp_files(stage2_dir)))
    files = stage_files(root, key)
    assert files["raw_captions"].exists() and files["stage1_paraphrases"].exists()
    assert not files["stage2_paraphrases"].exists() and not files["filtered_pairs"].exists()

    rerun = json.loads(
        run_worker("stream_stages", str(shards), str(root), key, str(rules), "50").splitlines()[-1]
    )
    assert rerun == reference
    expected = stage_files(reference_root, key)
    for name in STAGE_OUTPUTS:
        assert pq.read_table(files[name]).equals(pq.read_table(expected[name])), name
    # The killed write's temp file is hidden and never read as output.
    assert all(path.name.startswith(f".{key}.parquet.") for path in temp_files(stage2_dir))
