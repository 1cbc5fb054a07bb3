"""Automation conditions: downstream work is requested only when an input's DATA VERSION
changed, and one quarantined shard never blocks the rest.

Dagster's ``eager()`` reacts to any new materialization of a dependency (an identical
refilter retrained and re-reported: ~10 min and 183 MB for bit-identical weights) and
waits while ANY dependency partition is missing, which for an all-shards input means
forever once one shard has failed. text_encoder_checkpoint has no condition: the
retraining policy sensor (``defs/retraining.py``) requests it.
"""

import dagster as dg

from paraclip_pipeline.asset_names import TEXT_ENCODER_CHECKPOINT

AC = dg.AutomationCondition

# A dependency whose content changed, or which this tick will rebuild (so a chain of
# per-shard assets is requested together).
_input_changed = AC.any_deps_match(AC.data_version_changed() | AC.will_be_requested())
_idle = ~AC.any_deps_in_progress() & ~AC.in_progress()


def per_shard() -> dg.AutomationCondition:
    """A per-shard asset: new partition or an input's content changed, all inputs present."""
    return (
        (AC.newly_missing() | _input_changed).since_last_handled() & ~AC.any_deps_missing() & _idle
    ).with_label("per_shard_on_data_change")


def filtered_pairs_condition() -> dg.AutomationCondition:
    """Like ``per_shard``, and also after a rules edit (the code version carries the rules'
    hash); a partition whose inputs are missing (a quarantined shard) is never refiltered."""
    return (
        (AC.newly_missing() | _input_changed | AC.code_version_changed()).since_last_handled()
        & ~AC.any_deps_missing()
        & _idle
    ).with_label("filtered_pairs_on_data_or_rules_change")


def report_condition() -> dg.AutomationCondition:
    """The report follows the checkpoint's data version (its weights' sha256) only: a
    retrain that produced the same weights, or none, leaves the report fresh."""
    checkpoint = dg.AssetSelection.assets(TEXT_ENCODER_CHECKPOINT)
    return (
        (
            AC.newly_missing() | AC.any_deps_match(AC.data_version_changed()).allow(checkpoint)
        ).since_last_handled()
        & ~AC.any_deps_missing().allow(checkpoint)
        & _idle
    ).with_label("report_on_checkpoint_change")
