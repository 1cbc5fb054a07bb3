"""The one Dagster entry point: ``dagster dev -w workspace.yaml`` loads ``defs`` from here."""

import warnings

import dagster as dg

from paraclip_pipeline.defs.automation import (
    automation_sensor,
    build_nightly_refresh,
    new_shard_sensor,
    shard_job,
    training_job,
)
from paraclip_pipeline.defs.captions import raw_captions
from paraclip_pipeline.defs.filtering import (
    build_filtered_pairs,
    build_rules_current_check,
    filtered_pairs_code_version,
)
from paraclip_pipeline.defs.paraphrases import stage1_paraphrases, stage2_paraphrases
from paraclip_pipeline.defs.ray import build_ray_shard_steps
from paraclip_pipeline.defs.report_checks import benchmark_report_no_dev_regression
from paraclip_pipeline.defs.reports import benchmark_report
from paraclip_pipeline.defs.resources import default_resources
from paraclip_pipeline.defs.retraining import build_retrain_sensor
from paraclip_pipeline.defs.staleness import build_rules_staleness_sensor
from paraclip_pipeline.defs.training import image_embeddings, text_encoder_checkpoint
from paraclip_pipeline.filtering.rules import load_rules
from paraclip_pipeline.quiet import silence_model_chatter
from paraclip_pipeline.settings import Settings

# Every run worker imports this module before any model loads.
silence_model_chatter()
# Output(data_version=...) is how a per-shard asset reports its content hash; Dagster marks
# the parameter beta, which is noise in every run log.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
# Partitioned asset checks (one result per shard) are a Dagster preview feature.
warnings.filterwarnings("ignore", category=dg.PreviewWarning)


def build_defs(
    settings: Settings | None = None, resources: dict[str, object] | None = None
) -> dg.Definitions:
    """Definitions for one set of settings; tests pass their own settings and resources."""
    settings = settings or Settings.from_env()
    code_version = filtered_pairs_code_version(load_rules(settings.filter_rules_path))
    per_shard = [
        raw_captions,
        stage1_paraphrases,
        stage2_paraphrases,
        build_filtered_pairs(settings.filter_rules_path),
        image_embeddings,
    ]
    if settings.ray_address:
        # The same assets as one multi-asset that runs a batch of partitions on Ray.
        per_shard = [build_ray_shard_steps(settings, per_shard)]
    return dg.Definitions(
        assets=[*per_shard, text_encoder_checkpoint, benchmark_report],
        asset_checks=[
            build_rules_current_check(code_version),
            benchmark_report_no_dev_regression,
        ],
        jobs=[shard_job, training_job],
        sensors=[
            new_shard_sensor,
            automation_sensor,
            build_rules_staleness_sensor(code_version),
            build_retrain_sensor(settings.retrain_policy, code_version),
        ],
        schedules=[build_nightly_refresh(settings.refresh_cron, code_version)],
        resources={**default_resources(settings), **(resources or {})},
    )


defs = build_defs()
