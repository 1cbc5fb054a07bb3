"""benchmark_report's guard rail: a WARNING when a dev metric drops below the baseline.

The verdicts come from ``evaluation.public.guard`` (tolerances as data); this module only
reads the report's ``results.json`` and hands them to Dagster.
"""

import json
from pathlib import Path

import dagster as dg

from paraclip_pipeline.asset_names import BENCHMARK_REPORT

NO_DEV_REGRESSION_CHECK = "no_dev_regression"
RESULTS_METADATA_KEY = "results_json"


def _public_records(context: dg.AssetCheckExecutionContext) -> list[dict] | None:
    event = context.instance.get_latest_materialization_event(dg.AssetKey(BENCHMARK_REPORT))
    materialization = event.asset_materialization if event else None
    if materialization is None or RESULTS_METADATA_KEY not in materialization.metadata:
        return None
    results = Path(str(materialization.metadata[RESULTS_METADATA_KEY].value))
    return json.loads(results.read_text(encoding="utf-8")).get("public_benchmarks", [])


@dg.asset_check(
    asset=BENCHMARK_REPORT,
    name=NO_DEV_REGRESSION_CHECK,
    description=(
        "Fails (warning) when a dev or validation metric of the public benchmarks falls "
        "below the pretrained baseline by more than its tolerance "
        "(evaluation/public/tolerances.yaml); test splits are listed, never gated."
    ),
)
def benchmark_report_no_dev_regression(
    context: dg.AssetCheckExecutionContext,
) -> dg.AssetCheckResult:
    from paraclip_pipeline.evaluation.public.guard import TOLERANCES_FILE, judge, load_tolerances

    records = _public_records(context)
    if records is None:
        raise dg.Failure("benchmark_report has no results.json to check yet")
    judgement = judge(records, load_tolerances())
    return dg.AssetCheckResult(
        passed=judgement.passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=judgement.summary()
        if records
        else "no public benchmark data (set PARACLIP_EVAL_DATA): nothing to check",
        metadata={
            "verdict": judgement.summary(),
            "gated_metrics": len(judgement.gated),
            "dropped_metrics": len(judgement.dropped),
            "metrics": dg.MetadataValue.md(judgement.markdown()),
            "records": dg.MetadataValue.json(judgement.records()),
            "tolerances_file": dg.MetadataValue.path(str(TOLERANCES_FILE)),
        },
    )
