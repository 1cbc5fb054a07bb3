"""The code location loads and has the graph users expect."""

import dagster as dg

from paraclip_pipeline.definitions import defs

PER_SHARD = {
    "raw_captions",
    "stage1_paraphrases",
    "stage2_paraphrases",
    "filtered_pairs",
    "image_embeddings",
}


def test_seven_assets_with_expected_dependencies() -> None:
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == PER_SHARD | {"text_encoder_checkpoint", "benchmark_report"}

    def parents(name: str) -> set[str]:
        return {k.to_user_string() for k in graph.get(dg.AssetKey(name)).parent_keys}

    assert parents("raw_captions") == set()
    assert parents("stage1_paraphrases") == {"raw_captions"}
    assert parents("stage2_paraphrases") == {"stage1_paraphrases"}
    assert parents("filtered_pairs") == {"raw_captions", "stage2_paraphrases"}
    assert parents("image_embeddings") == {"raw_captions"}
    assert parents("text_encoder_checkpoint") == {"filtered_pairs", "image_embeddings"}
    assert parents("benchmark_report") == {"text_encoder_checkpoint", "filtered_pairs"}


def test_per_shard_assets_share_the_shard_partitions() -> None:
    graph = defs.resolve_asset_graph()
    for name in PER_SHARD:
        partitions_def = graph.get(dg.AssetKey(name)).partitions_def
        assert isinstance(partitions_def, dg.DynamicPartitionsDefinition)
        assert partitions_def.name == "caption_shards"
    for name in ("text_encoder_checkpoint", "benchmark_report"):
        assert graph.get(dg.AssetKey(name)).partitions_def is None


def test_filter_rules_hash_is_in_the_code_version() -> None:
    from paraclip_pipeline.filtering.rules import load_rules
    from paraclip_pipeline.settings import Settings

    rules = load_rules(Settings.from_env().filter_rules_path)
    node = defs.resolve_asset_graph().get(dg.AssetKey("filtered_pairs"))
    assert rules.content_hash[:16] in node.code_version


def test_checks_sensors_schedules_and_jobs_are_registered() -> None:
    check_names = {key.name for key in defs.resolve_asset_graph().asset_check_keys}
    assert {
        "schema_matches",
        "no_null_text",
        "unique_caption_ids",
        "pass_rate_within_bounds",
        "built_with_current_rules",
    } <= check_names
    assert defs.resolve_sensor_def("new_shard_sensor").default_status == (
        dg.DefaultSensorStatus.RUNNING
    )
    assert defs.resolve_sensor_def("paraclip_automation") is not None
    for name in ("rules_staleness_sensor", "retrain_policy_sensor"):
        assert defs.resolve_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING
    assert defs.resolve_sensor_def("retrain_policy_sensor").job_name == "training_job"
    assert defs.resolve_schedule_def("nightly_refresh").default_status == (
        dg.DefaultScheduleStatus.RUNNING
    )
    assert defs.resolve_job_def("shard_job").partitions_def is not None
    assert defs.resolve_job_def("training_job") is not None


def test_paraphrase_steps_share_the_llm_pool() -> None:
    graph = defs.resolve_asset_graph()
    for name in ("stage1_paraphrases", "stage2_paraphrases"):
        assets_def = graph.get(dg.AssetKey(name)).assets_def
        assert assets_def.op.pool == "llm_backend"
