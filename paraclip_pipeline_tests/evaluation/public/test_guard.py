"""The dev-regression verdicts: tolerances from the shipped file, gated vs reported files."""

from __future__ import annotations

from pathlib import Path

import pytest

from paraclip_pipeline.evaluation.errors import EvaluationError
from paraclip_pipeline.evaluation.public.benchmarks import LAYOUT
from paraclip_pipeline.evaluation.public.guard import (
    DROPPED,
    NOT_GATED,
    OK,
    judge,
    load_tolerances,
)


def record(benchmark: str, file: str, metric: str, delta: float) -> dict:
    return {
        "benchmark": benchmark,
        "file": file,
        "metric": metric,
        "baseline": 50.0,
        "model": 50.0 + delta,
        "delta": delta,
        "ci_low": delta - 1.0,
        "ci_high": delta + 1.0,
    }


def test_shipped_tolerances_cover_every_benchmark() -> None:
    tolerances = load_tolerances()
    assert set(tolerances.max_drop) == set(LAYOUT)
    assert tolerances.max_drop["stsb"] == 0.5 and tolerances.max_drop["caption_groups"] == 0.0


def test_a_dev_drop_beyond_its_tolerance_fails_and_test_splits_are_not_gated() -> None:
    records = [
        record("stsb", "stsb/sts-dev.csv", "spearman", -0.4),  # within 0.5
        record("paws", "paws/dev.tsv", "AP", -0.6),  # beyond 0.5
        record("caption_groups", "coco_captions_dev/captions.txt", "mAP", -0.01),
        record("sugarcrepe_pp", "sugarcrepe_pp/swap_att.json", "accuracy", 0.0),
        record("caption_groups", "f30k_captions_test/captions.txt", "mAP", -9.0),
        record("stsb", "stsb/sts-test.csv", "spearman", -9.0),
    ]
    judgement = judge(records, load_tolerances())
    assert [v.verdict for v in judgement.verdicts] == [
        OK,
        DROPPED,
        DROPPED,
        OK,
        NOT_GATED,
        NOT_GATED,
    ]
    assert not judgement.passed and len(judgement.gated) == 4
    assert judgement.summary() == (
        "FAILED: 2 of 4 dev metrics dropped: paws/dev.tsv AP -0.60, "
        "coco_captions_dev/captions.txt mAP -0.01"
    )
    table = judgement.markdown().splitlines()
    assert (
        table[3]
        == "| paws/dev.tsv | AP | 50.00 | 49.40 | -0.60 | [-1.60, +0.40] | 0.50 | DROPPED |"
    )
    assert judgement.records()[4]["max_drop"] is None


def test_gains_and_drops_within_tolerance_pass() -> None:
    records = [
        record("stsb", "stsb/sts-dev.csv", "spearman", -0.5),
        record("caption_groups", "f30k_captions_dev/captions.txt", "AO@10", 1.2),
    ]
    judgement = judge(records, load_tolerances())
    assert judgement.passed
    assert judgement.summary() == "passed: none of 2 dev metrics dropped beyond its tolerance"
    assert judge([], load_tolerances()).summary() == "no dev metric to check"


def test_bad_tolerances_files_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "tolerances.yaml"
    path.write_text("gated_files: ['*dev*']\nmax_drop: {stsb: -1}\n")
    with pytest.raises(EvaluationError, match="max_drop of stsb is negative"):
        load_tolerances(path)
    path.write_text("gated_files: ['*dev*']\nmax_dorp: {}\n")
    with pytest.raises(EvaluationError, match=r"tolerances\.yaml: not a valid tolerances file"):
        load_tolerances(path)
    path.write_text("gated_files: ['*dev*']\nmax_drop: {stsb: 0.5}\n")
    with pytest.raises(EvaluationError, match="no max_drop for benchmark 'paws'"):
        judge([record("paws", "paws/dev.tsv", "AP", 0.0)], load_tolerances(path))
