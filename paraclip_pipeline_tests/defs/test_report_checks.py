"""benchmark_report's no_dev_regression check in Dagster, on tiny fake results."""

import json
from pathlib import Path

import dagster as dg
import pytest

from paraclip_pipeline.asset_names import BENCHMARK_REPORT
from paraclip_pipeline.defs.report_checks import (
    NO_DEV_REGRESSION_CHECK,
    RESULTS_METADATA_KEY,
    benchmark_report_no_dev_regression,
)
from paraclip_pipeline_tests.evaluation.public.test_guard import record


def _check_after_fake_report(tmp_path: Path, records: list[dict]) -> dg.AssetCheckEvaluation:
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"public_benchmarks": records}))

    @dg.asset(name=BENCHMARK_REPORT)
    def fake_report() -> dg.MaterializeResult:
        return dg.MaterializeResult(
            metadata={RESULTS_METADATA_KEY: dg.MetadataValue.path(str(results))}
        )

    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [fake_report, benchmark_report_no_dev_regression], instance=instance
        )
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == NO_DEV_REGRESSION_CHECK
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    return evaluation


@pytest.mark.parametrize(
    ("delta", "passed", "verdict"),
    [
        (-0.3, True, "passed: none of 2 dev metrics dropped beyond its tolerance"),
        (-0.7, False, "FAILED: 1 of 2 dev metrics dropped: stsb/sts-dev.csv spearman -0.70"),
    ],
)
def test_a_dev_drop_beyond_tolerance_fails_the_check(
    tmp_path: Path, delta: float, passed: bool, verdict: str
) -> None:
    records = [
        record("stsb", "stsb/sts-dev.csv", "spearman", delta),
        record("caption_groups", "coco_captions_dev/captions.txt", "mAP", 0.8),
        record("stsb", "stsb/sts-test.csv", "spearman", -5.0),  # reported, not gated
    ]
    evaluation = _check_after_fake_report(tmp_path, records)
    metadata = {key: value.value for key, value in evaluation.metadata.items()}
    assert evaluation.passed is passed
    assert metadata["verdict"] == verdict
    assert metadata["gated_metrics"] == 2
    assert [row["verdict"] for row in metadata["records"]][2] == "not gated"
    assert "| stsb/sts-test.csv | spearman | 50.00 | 45.00 | -5.00 |" in metadata["metrics"]


def test_without_public_data_there_is_nothing_to_check(tmp_path: Path) -> None:
    evaluation = _check_after_fake_report(tmp_path, [])
    assert evaluation.passed
    assert evaluation.description.startswith("no public benchmark data")
