"""The one Dagster entry point: ``dagster dev -w workspace.yaml`` loads ``defs`` from here."""

import dagster as dg

from paraclip_pipeline.defs.automation import (
    automation_sensor,
    new_shard_sensor,
    nightly_refresh,
    shard_job,
    training_job,
)
from paraclip_pipeline.defs.captions import raw_captions
from paraclip_pipeline.defs.filtering import filtered_pairs, filtered_pairs_built_with_current_rules
from paraclip_pipeline.defs.paraphrases import stage1_paraphrases, stage2_paraphrases
from paraclip_pipeline.defs.reports import benchmark_report
from paraclip_pipeline.defs.resources import default_resources
from paraclip_pipeline.defs.training import image_embeddings, text_encoder_checkpoint
from paraclip_pipeline.settings import Settings

defs = dg.Definitions(
    assets=[
        raw_captions,
        stage1_paraphrases,
        stage2_paraphrases,
        filtered_pairs,
        image_embeddings,
        text_encoder_checkpoint,
        benchmark_report,
    ],
    asset_checks=[filtered_pairs_built_with_current_rules],
    jobs=[shard_job, training_job],
    sensors=[new_shard_sensor, automation_sensor],
    schedules=[nightly_refresh],
    resources=default_resources(Settings.from_env()),
)
