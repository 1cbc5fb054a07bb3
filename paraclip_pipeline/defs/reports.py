"""benchmark_report: baseline vs fine-tuned on STS, held-out paraphrase pairs and more."""

import time
from collections.abc import Sequence
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
from paraclip_pipeline.defs.report_checks import RESULTS_METADATA_KEY
from paraclip_pipeline.defs.resources import ClipModelResource, EvaluationResource, StorageResource
from paraclip_pipeline.defs.training import CHECKPOINT_DIR_KEY, SEED_CHECKPOINTS_KEY, SEED_KEY
from paraclip_pipeline.storage import STREAM_BATCH_ROWS, ParquetTable

REPORT_GROUP = "evaluation"
CHECKPOINT_KEY = dg.AssetKey(TEXT_ENCODER_CHECKPOINT)


def _latest_checkpoints(instance: dg.DagsterInstance) -> list[tuple[int | None, Path]]:
    """(seed, dir) of the latest checkpoint, or of each seed's, the primary first; the seed is
    None for a single-seed run (its records stay exactly as before)."""
    event = instance.get_latest_materialization_event(CHECKPOINT_KEY)
    materialization = event.asset_materialization if event else None
    if materialization is None or CHECKPOINT_DIR_KEY not in materialization.metadata:
        raise dg.Failure("text_encoder_checkpoint has not been materialized yet")
    metadata = materialization.metadata
    if SEED_CHECKPOINTS_KEY in metadata:
        return [
            (int(entry[SEED_KEY]), Path(entry[CHECKPOINT_DIR_KEY]))
            for entry in metadata[SEED_CHECKPOINTS_KEY].value  # type: ignore[union-attr]
        ]
    return [(None, Path(str(metadata[CHECKPOINT_DIR_KEY].value)))]


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
    filtered_pairs: dict[str, ParquetTable],
    clip_model: ClipModelResource,
    evaluation: EvaluationResource,
    storage: StorageResource,
) -> dg.MaterializeResult:
    """The paper's evaluation, baseline and fine-tuned side by side, as Markdown + HTML;
    with ``eval_data_dir`` also the public benchmarks (the code `paraclip evaluate` runs)."""
    from paraclip_pipeline.evaluation.leakage import refuse_leaked_checkpoint
    from paraclip_pipeline.evaluation.public.embedding_cache import EmbeddingCache
    from paraclip_pipeline.evaluation.public.models import cacheable_clip
    from paraclip_pipeline.evaluation.public.render import files_scored
    from paraclip_pipeline.evaluation.public.selection import Selection
    from paraclip_pipeline.evaluation.public.suite import run_public_benchmarks
    from paraclip_pipeline.evaluation.report import render_report
    from paraclip_pipeline.evaluation.report_rows import mean_suite
    from paraclip_pipeline.evaluation.suite import EvaluationConfig, run_suite
    from paraclip_pipeline.modeling.checkpoint_format import (
        read_manifest,
        read_trained_caption_ids,
    )
    from paraclip_pipeline.modeling.profiles import get_profile

    checkpoints = _latest_checkpoints(context.instance)
    checkpoint_dir = checkpoints[0][1]
    # Every loaded shard counts for the leakage check; only the trainable ones are scored.
    # Both stream the shards' files: only the test rows are held (issue 14).
    scored, excluded = select_trainable(context, filtered_pairs)
    if not scored:
        raise dg.Failure("no shard may be evaluated: " + excluded_summary(excluded))
    heldout = _test_rows([scored[shard] for shard in sorted(scored)])
    for _, seed_dir in checkpoints:
        trained_ids = read_trained_caption_ids(seed_dir, read_manifest(seed_dir))
        shards = (filtered_pairs[shard] for shard in sorted(filtered_pairs))
        pairs = (
            batch
            for table in shards
            for batch in table.batches(STREAM_BATCH_ROWS, [schema.CAPTION_ID, schema.TEXT])
        )
        refuse_leaked_checkpoint(seed_dir.name, trained_ids, pairs, heldout)
    manifest = read_manifest(checkpoint_dir)
    config = EvaluationConfig(
        sts_dir=Path(evaluation.sts_dir) if evaluation.sts_dir else None,
        aro_dir=Path(evaluation.aro_dir) if evaluation.aro_dir else None,
        coco_dir=Path(evaluation.coco_dir) if evaluation.coco_dir else None,
        rank_k=evaluation.rank_k,
    )
    public = None
    public_context: dict[str, str] = {}
    public_seconds = 0.0
    with heartbeat(context.log.info, "evaluation") as progress:
        baseline_model = clip_model.load()
        finetuned_models = [clip_model.load(checkpoint=seed_dir) for _, seed_dir in checkpoints]
        progress("evaluating the baseline")
        baseline = run_suite(baseline_model, config, heldout)
        progress(f"evaluating the fine-tuned checkpoint ({len(finetuned_models)} seed(s))")
        seed_results = [run_suite(model, config, heldout) for model in finetuned_models]
        finetuned = seed_results[0] if len(seed_results) == 1 else mean_suite(seed_results)
        if evaluation.eval_data_dir:
            selection = Selection(tuple(evaluation.eval_files or ()), evaluation.eval_max_items)
            started = time.perf_counter()
            public = run_public_benchmarks(
                Path(evaluation.eval_data_dir),
                finetuned_models,
                cacheable_clip(baseline_model)
                if evaluation.cache_baseline_embeddings
                else baseline_model,
                seeds=[seed for seed, _ in checkpoints],
                resamples=evaluation.bootstrap_resamples,
                progress=progress,
                selection=selection,
                cache=EmbeddingCache(storage.layout.root),
            )
            public_seconds = time.perf_counter() - started
            public_context = {
                "public benchmark selection": selection.describe(),
                "public benchmark files scored": files_scored(public),
                "public benchmark time": f"{public_seconds:.0f} s",
            }
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
            **_seeds_context(checkpoints),
            "model profile": clip_model.profile,
            "test pairs (held out)": str(len(heldout)),
            "losses trained with": "; ".join(
                f"{term} {why}" for term, why in manifest.get("losses", {}).items()
            )
            or "not recorded",
            "shards left out": excluded_summary(excluded),
            "public benchmark data": evaluation.eval_data_dir or "not set (PARACLIP_EVAL_DATA)",
            **public_context,
        },
        public_benchmarks=public,
        seed_results=seed_results,
    )
    return dg.MaterializeResult(
        metadata={
            "report_markdown": dg.MetadataValue.path(str(files.markdown)),
            "report_html": dg.MetadataValue.path(str(files.html)),
            RESULTS_METADATA_KEY: dg.MetadataValue.path(str(files.results_json)),
            CHECKPOINT_DIR_KEY: dg.MetadataValue.path(str(checkpoint_dir)),
            **({"seeds": len(checkpoints)} if len(checkpoints) > 1 else {}),
            "heldout_pairs": len(heldout),
            "excluded_shards": records_table(excluded, EXCLUDED_COLUMNS),
            "public_benchmark_scores": len(public or []),
            **({"public_benchmark_time_s": round(public_seconds, 1)} if public else {}),
            "summary": dg.MetadataValue.md(files.summary_table_markdown),
            **{key: float(value) for key, value in files.headline.items()},
        }
    )


def _test_rows(shards: Sequence[ParquetTable]) -> pa.Table:
    """The test split's rows of ``shards``, read batch by batch: only they are held, not
    the shards (the validation split is for choosing settings, and is never scored)."""
    kept = [
        table.filter(pc.equal(table[schema.SPLIT], schema.TEST))
        for shard in shards
        for table in (pa.Table.from_batches([batch]) for batch in shard.batches(STREAM_BATCH_ROWS))
    ]
    return pa.concat_tables(kept).combine_chunks() if kept else shards[0].schema.empty_table()


def _seeds_context(checkpoints: list[tuple[int | None, Path]]) -> dict[str, str]:
    if len(checkpoints) < 2:
        return {}
    return {
        "seeds": f"{len(checkpoints)} ({', '.join(str(seed) for seed, _ in checkpoints)}); "
        "fine-tuned = mean over seeds, spread = sample std [min, max]",
        "seed checkpoints": ", ".join(str(path) for _, path in checkpoints),
    }
