"""End to end: run_suite on every benchmark fixture, then render_report."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from PIL import Image

from paraclip_pipeline.evaluation.report import render_report
from paraclip_pipeline.evaluation.results import SuiteResult
from paraclip_pipeline.evaluation.suite import EvaluationConfig, run_suite
from paraclip_pipeline_tests.evaluation.support import STS_FIXTURES, HashingEncoder
from paraclip_pipeline_tests.evaluation.test_retrieval import HELDOUT

NOTE = "Image tower is randomly initialised: image-side numbers measure the pipeline only."


@pytest.fixture
def config(aro_dir: Path, coco_dir: Path) -> EvaluationConfig:
    return EvaluationConfig(
        sts_dir=STS_FIXTURES,
        aro_dir=aro_dir,
        coco_dir=coco_dir,
        rank_k=(3, 2),
        aro_min_attribute_pair_count=2,
    )


def test_suite_runs_every_benchmark_and_round_trips_json(config: EvaluationConfig) -> None:
    result = run_suite(HashingEncoder(seed=0), config, HELDOUT)
    assert {name: bench.status for name, bench in result.benchmarks.items()} == {
        "sts": "ok",
        "heldout_rank_similarity": "ok",
        "coco_rank_similarity": "ok",
        "zero_shot_retrieval": "ok",
        "aro": "ok",
    }
    assert result.rank_ks == [2, 3]
    as_json = json.dumps(result.to_dict())
    assert SuiteResult.from_dict(json.loads(as_json)).to_dict() == json.loads(as_json)


def test_suite_reports_absent_benchmarks() -> None:
    result = run_suite(HashingEncoder(), EvaluationConfig(), None)
    assert {bench.status for bench in result.benchmarks.values()} == {"absent"}


def test_report_files_tables_plots_and_headline(config: EvaluationConfig, tmp_path: Path) -> None:
    baseline = run_suite(HashingEncoder(seed=0), config, HELDOUT)
    finetuned = run_suite(HashingEncoder(seed=1), config, HELDOUT)
    out_dir = tmp_path / "report"
    files = render_report(
        baseline,
        finetuned,
        out_dir,
        title="Test report",
        notes=[NOTE],
        context={"checkpoint": "ckpt-1"},
    )
    for path in (files.markdown, files.html, files.results_json, *files.plots):
        assert path.is_file() and path.parent == out_dir
    assert sorted(path.name for path in files.plots) == [
        "deltas.png",
        "rank_similarity_distribution.png",
    ]
    for plot in files.plots:
        with Image.open(plot) as image:
            image.verify()
            assert image.format == "PNG"

    sts_before = baseline.benchmarks["sts"].averages["spearman"]
    sts_after = finetuned.benchmarks["sts"].averages["spearman"]
    assert files.headline["sts_avg_baseline"] == pytest.approx(sts_before)
    assert files.headline["sts_avg_delta"] == pytest.approx(sts_after - sts_before)
    assert {"ao2_delta", "js3_delta", "coco_ao2_delta", "aro_macro_accuracy_delta"} <= set(
        files.headline
    )

    html = files.html.read_text()
    assert "<table>" in html and "STS (Spearman of cosine vs gold)" in html
    assert f"{sts_before * 100:.2f}" in html
    assert html.count("data:image/png;base64,") == 2
    assert NOTE in html and NOTE in files.markdown.read_text()
    assert (
        "| Benchmark | Task | Metric | Baseline | Fine-tuned | Δ |" in files.summary_table_markdown
    )
    assert files.summary_table_markdown in files.markdown.read_text()
    assert "STS13" in files.markdown.read_text()  # listed among the absent tasks

    saved = json.loads(files.results_json.read_text())
    assert saved["headline"] == pytest.approx(files.headline)
    assert saved["baseline"]["benchmarks"]["sts"]["scores"]["STS12"]["spearman"] == pytest.approx(
        baseline.benchmarks["sts"].scores["STS12"]["spearman"]
    )

    first_bytes = {path.name: path.read_bytes() for path in out_dir.iterdir()}
    render_report(
        baseline,
        finetuned,
        out_dir,
        title="Test report",
        notes=[NOTE],
        context={"checkpoint": "ckpt-1"},
    )
    assert {path.name: path.read_bytes() for path in out_dir.iterdir()} == first_bytes


def test_report_shows_public_benchmarks_with_intervals(
    config: EvaluationConfig, tmp_path: Path
) -> None:
    suite = run_suite(HashingEncoder(seed=0), config, HELDOUT)
    record = {
        "benchmark": "stsb",
        "file": "stsb/sts-test.csv",
        "metric": "spearman",
        "baseline": 82.0,
        "model": 80.9,
        "delta": -1.1,
        "ci_low": -1.6,
        "ci_high": -0.6,
    }
    unsure = {**record, "file": "stsb/sts-dev.csv", "delta": 0.1, "ci_low": -0.3, "ci_high": 0.5}
    files = render_report(
        suite,
        suite,
        tmp_path / "report",
        title="Test report",
        notes=[],
        context={},
        public_benchmarks=[record, unsure],
    )
    markdown = files.markdown.read_text()
    assert "## Public benchmarks" in markdown
    assert (
        "| stsb/sts-test.csv | spearman | 82.00 | 80.90 | -1.10 | [-1.60, -0.60] |  |" in markdown
    )
    assert (
        "| stsb/sts-dev.csv | spearman | 82.00 | 80.90 | +0.10 | [-0.30, +0.50] | ~ |" in markdown
    )
    assert "[-1.60, -0.60]" in files.html.read_text()
    assert json.loads(files.results_json.read_text())["public_benchmarks"][0] == record


def test_report_of_two_seeds_shows_their_mean_and_spread(
    config: EvaluationConfig, tmp_path: Path
) -> None:
    from paraclip_pipeline.evaluation.report_rows import mean_suite

    baseline = run_suite(HashingEncoder(seed=0), config, HELDOUT)
    seeds = [run_suite(HashingEncoder(seed=seed), config, HELDOUT) for seed in (1, 2)]
    files = render_report(
        baseline,
        mean_suite(seeds),
        tmp_path / "report",
        title="Test report",
        notes=[],
        context={},
        seed_results=seeds,
    )
    values = [seed.benchmarks["sts"].averages["spearman"] for seed in seeds]
    mean, std = statistics.mean(values), statistics.stdev(values)
    assert files.headline["sts_avg_finetuned"] == pytest.approx(mean)
    assert files.headline["sts_avg_finetuned_std"] == pytest.approx(std)
    before = baseline.benchmarks["sts"].averages["spearman"]
    spread = f"±{std * 100:.2f} [{min(values) * 100:.2f}, {max(values) * 100:.2f}]"
    assert (
        f"| {mean * 100:.2f} | {spread} | {(mean - before) * 100:+.2f} |"
        in files.summary_table_markdown
    )
    assert "Spread over seeds" in files.html.read_text()
    saved = json.loads(files.results_json.read_text())
    assert len(saved["finetuned_seeds"]) == 2
    sts_row = next(row for row in saved["summary"] if row["metric"] == "spearman")
    assert sts_row["seed_values"] == pytest.approx(values)


def test_report_of_one_seed_has_no_spread(config: EvaluationConfig, tmp_path: Path) -> None:
    suite = run_suite(HashingEncoder(seed=0), config, HELDOUT)
    files = render_report(
        suite, suite, tmp_path / "r", title="t", notes=[], context={}, seed_results=[suite]
    )
    saved = json.loads(files.results_json.read_text())
    assert "finetuned_seeds" not in saved and "seed_values" not in saved["summary"][0]
    assert "Spread" not in files.markdown.read_text()
    assert not any(key.endswith("_std") for key in files.headline)
