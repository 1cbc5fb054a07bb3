"""Which files are scored and how many items: patterns, deterministic subsamples, and the
records and settings that say so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paraclip_pipeline.cli import main
from paraclip_pipeline.evaluation.errors import BenchmarkDataError
from paraclip_pipeline.evaluation.public.benchmarks import load_benchmark_files
from paraclip_pipeline.evaluation.public.selection import Selection
from paraclip_pipeline.evaluation.public.suite import run_public_benchmarks
from paraclip_pipeline.settings import EVAL_FILES_ENV, EVAL_MAX_ITEMS_ENV, Settings
from paraclip_pipeline_tests.evaluation.public.support import (
    CAPTIONS,
    PAWS_LINES,
    write_public_fixture,
)
from paraclip_pipeline_tests.evaluation.support import HashingEncoder


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return write_public_fixture(tmp_path / "eval")


def test_patterns_pick_files_and_directories(data_dir: Path) -> None:
    files = load_benchmark_files(data_dir, Selection(("f30k_*/captions.txt", "stsb")))
    assert [f.relative for f in files] == ["f30k_captions_dev/captions.txt", "stsb/sts-test.csv"]


def test_a_pattern_matching_nothing_is_an_error_naming_it(data_dir: Path) -> None:
    with pytest.raises(BenchmarkDataError, match=r"'paws/dev\.tsv' match no benchmark file"):
        load_benchmark_files(data_dir, Selection(("paws/dev.tsv",)))


def test_caption_groups_keep_the_first_images_and_pairs_a_seeded_sample(data_dir: Path) -> None:
    files = {f.relative: f for f in load_benchmark_files(data_dir, Selection(max_items=2))}
    groups = files["f30k_captions_dev/captions.txt"]
    assert groups.data.captions == CAPTIONS[:10]
    assert groups.items == 2 and groups.subsample_note.startswith("subsample of 2 of 3 images")
    paws = files["paws/test.tsv"]
    assert paws.items == 2 and paws.subsample_note.startswith("subsample of 2 of 4 pairs")
    firsts = [line.split("\t")[1] for line in PAWS_LINES]
    assert set(paws.data.first) < set(firsts) and len(paws.data.is_paraphrase) == 2
    again = load_benchmark_files(data_dir, Selection(max_items=2))
    assert [f.data.first for f in again if f.relative == "paws/test.tsv"] == [paws.data.first]
    assert files["stsb/sts-test.csv"].data.gold.shape == (2,)
    uncapped = load_benchmark_files(data_dir, Selection(max_items=100))
    assert all(f.subsample_note is None for f in uncapped)


def test_records_say_which_items_were_scored(data_dir: Path) -> None:
    capped = run_public_benchmarks(
        data_dir,
        HashingEncoder(seed=1),
        HashingEncoder(seed=2),
        resamples=20,
        selection=Selection(("paws",), max_items=2),
    )
    [paws] = capped
    assert paws["file_items"] == 2 and paws["subsample"].startswith("subsample of 2 of 4 pairs")
    records = run_public_benchmarks(
        data_dir,
        HashingEncoder(seed=1),
        HashingEncoder(seed=2),
        resamples=20,
        selection=Selection(("f30k_captions_dev", "mrpc"), max_items=3),
    )
    assert {r["file"] for r in records} == {
        "f30k_captions_dev/captions.txt",
        "mrpc/msr_paraphrase_test.txt",
    }
    mrpc = next(r for r in records if r["benchmark"] == "mrpc")
    assert mrpc["file_items"] == 3 and "subsample" not in mrpc  # 3 pairs, under the cap
    r1 = next(r for r in records if r["metric"] == "R@1")
    assert r1["file_items"] == r1["items"] == 3 and "subsample" not in r1


def test_settings_read_the_selection_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EVAL_FILES_ENV, "coco_*/captions.txt:stsb/sts-dev.csv")
    monkeypatch.setenv(EVAL_MAX_ITEMS_ENV, "300")
    settings = Settings.from_env()
    assert settings.eval_files == ("coco_*/captions.txt", "stsb/sts-dev.csv")
    assert settings.eval_max_items == 300
    monkeypatch.setenv(EVAL_MAX_ITEMS_ENV, "0")
    with pytest.raises(ValueError, match=EVAL_MAX_ITEMS_ENV):
        Settings.from_env()


def test_evaluate_files_and_max_items(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("PARACLIP_STORAGE_ROOT", str(tmp_path / "storage"))
    out_json = tmp_path / "scores.json"
    argv = [
        "evaluate", "--model", "pretrained", "--profile", "tiny-random", "--data", str(data_dir),
        "--json", str(out_json), "--resamples", "20", "--files", "paws:stsb", "--max-items", "2",
    ]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "paws/test.tsv (subsample of 2 of 4 pairs)" in printed
    records = json.loads(out_json.read_text())
    assert [r["file"] for r in records] == ["paws/test.tsv", "stsb/sts-test.csv"]
    assert all(r["file_items"] == 2 for r in records)
    # The pretrained baseline was cached: the second run reads it back, same numbers.
    assert list((tmp_path / "storage" / "cache" / "embeddings").rglob("*.parquet"))
    assert main(argv) == 0
    assert json.loads(out_json.read_text()) == records
