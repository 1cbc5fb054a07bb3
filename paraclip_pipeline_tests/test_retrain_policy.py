"""PARACLIP_RETRAIN_POLICY parsing: each policy, combinations, and clear errors."""

import pytest

from paraclip_pipeline.retrain_policy import DEFAULT_POLICY, RetrainPolicy


@pytest.mark.parametrize(
    ("spec", "min_pending", "cron"),
    [
        ("eager", 1, None),
        ("after_shards:5", 5, None),
        ("cron:0 3 * * *", None, "0 3 * * *"),
        ("after_shards:3 + cron:30  1 * * 1", 3, "30 1 * * 1"),
    ],
)
def test_each_policy_parses(spec: str, min_pending: int | None, cron: str | None) -> None:
    policy = RetrainPolicy.parse(spec)
    assert (policy.min_pending, policy.cron) == (min_pending, cron)
    assert RetrainPolicy.parse(policy.describe()) == policy


@pytest.mark.parametrize("spec", ["", "eagre", "after_shards:0", "after_shards:x", "cron:0 3 *"])
def test_bad_policy_names_the_variable_and_the_term(spec: str) -> None:
    with pytest.raises(ValueError, match=r"PARACLIP_RETRAIN_POLICY=.*is not 'eager'"):
        RetrainPolicy.parse(spec)


def test_default_batches_three_shards_or_a_nightly_cron() -> None:
    assert (DEFAULT_POLICY.min_pending, DEFAULT_POLICY.cron) == (3, "0 3 * * *")
    assert not DEFAULT_POLICY.due_by_count(2)
    assert DEFAULT_POLICY.due_by_count(3)
