"""benchmark_report: baseline vs fine-tuned on STS, held-out paraphrase pairs and more."""

from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from paraclip_pipeline import schema
from paraclip_pipeline.asset_names import FILTERED_PAIRS, TEXT_ENCODER_CHECKPOINT
from paraclip_pipeline.defs import conditions
from paraclip_pipeline.defs.eligibility import EXCLUDED_COLUMNS, excluded_summary, select_trainable
from paraclip_pipeline.defs.metadata import records_table
from paraclip_pipeline.defs.partitions import ALL_SHARDS
from paraclip_pipeline.defs.progress import heartbeat
from paraclip_pipeline.defs.resources import ClipModelResource, EvaluationResource, StorageResource

REPORT_GROUP = "evaluation"
CHECKPOINT_KEY = dg.AssetKey(TEXT_ENCODER_CHECKPOINT)


def _latest_checkpoint_dir(instance: dg.DagsterInstance) -> Path:
    event = instance.get_latest_materialization_event(CHECKPOINT_KEY)
    materialization = event.asset_materialization if event else None
    if materialization is None or "checkpoint_dir" not in materialization.metadata:
        raise dg.Failure("text_encoder_checkpoint has not been materialized yet")
    return Path(str(materialization.metadata["checkpoint_dir"].value))


@dg.asset(
    group_name=REPORT_GROUP,
    code_version="report-v2",
    kinds={"html", "markdown"},
    deps=[CHECKPOINT_KEY],
    ins={FILTERED_PAIRS: ALL_SHARDS},
    automation_condition=conditions.report_condition(),
)
def benchmark_report(
    context: dg.AssetExecutionContext,
    filtered_pairs: dict[str, pa.Table],
    clip_model: ClipModelResource,
    evaluation: EvaluationResource,
    storage: StorageResource,
) -> dg.MaterializeResult:
    """The paper's evaluation, baseline and fine-tuned side by side, as Markdown + HTML;
    with ``eval_data_dir`` also the public benchmarks (the code `paraclip evaluate` runs)."""
    from paraclip_pipeline.evaluation.public.suite import run_public_benchmarks
    from paraclip_pipeline.evaluation.report import render_report
    from paraclip_pipeline.evaluation.suite import EvaluationConfig, run_suite
    from paraclip_pipeline.modeling.profiles import get_profile

    checkpoint_dir = _latest_checkpoint_dir(context.instance)
    filtered_pairs, excluded = select_trainable(context, filtered_pairs)
    if not filtered_pairs:
        raise dg.Failure("no shard may be evaluated: " + excluded_summary(excluded))
    heldout = pa.concat_tables(filtered_pairs[shard] for shard in sorted(filtered_pairs))
    heldout = heldout.filter(pc.equal(heldout[schema.SPLIT], "heldout"))
    config = EvaluationConfig(
        sts_dir=Path(evaluation.sts_dir) if evaluation.sts_dir else None,
        aro_dir=Path(evaluation.aro_dir) if evaluation.aro_dir else None,
        coco_dir=Path(evaluation.coco_dir) if evaluation.coco_dir else None,
        rank_k=evaluation.rank_k,
    )
    with heartbeat(context.log.info, "evaluation") as progress:
        baseline_model = clip_model.load()
        finetuned_model = clip_model.load(checkpoint=checkpoint_dir)
        progress("evaluating the baseline")
        baseline = run_suite(baseline_model, config, heldout)
        progress("evaluating the fine-tuned checkpoint")
        finetuned = run_suite(finetuned_model, config, heldout)
        public = None
        if evaluation.eval_data_dir:
            public = run_public_benchmarks(
                Path(evaluation.eval_data_dir),
                finetuned_model,
                baseline_model,
                resamples=evaluation.bootstrap_resamples,
                progress=progress,
            )
    notes = []
    if get_profile(clip_model.profile).pretrained is None:
        notes.append(
            f"Model profile '{clip_model.profile}' has a randomly initialised image tower (no "
            "pretrained image weights are available offline): image-side numbers measure the "
            "pipeline, not CLIP quality."
        )
    files = render_report(
        baseline,
        finetuned,
        storage.layout.reports_dir / context.run_id,
        title="ParaCLIP benchmark report",
        notes=notes,
        context={
            "checkpoint": str(checkpoint_dir),
            "model profile": clip_model.profile,
            "held-out pairs": str(len(heldout)),
            "shards left out": excluded_summary(excluded),
            "public benchmark data": evaluation.eval_data_dir or "not set (PARACLIP_EVAL_DATA)",
        },
        public_benchmarks=public,
    )
    return dg.MaterializeResult(
        metadata={
            "report_markdown": dg.MetadataValue.path(str(files.markdown)),
            "report_html": dg.MetadataValue.path(str(files.html)),
            "checkpoint_dir": dg.MetadataValue.path(str(checkpoint_dir)),
            "heldout_pairs": len(heldout),
            "excluded_shards": records_table(excluded, EXCLUDED_COLUMNS),
            "public_benchmark_scores": len(public or []),
            "summary": dg.MetadataValue.md(files.summary_table_markdown),
            **{key: float(value) for key, value in files.headline.items()},
        }
    )
