"""STS loaders on upstream-format fixtures (and real files when present), Spearman vs scipy."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from paraclip_pipeline.evaluation import sts
from paraclip_pipeline.evaluation.errors import BenchmarkDataError
from paraclip_pipeline_tests.evaluation.support import STS_FIXTURES, HashingEncoder


def test_semeval_skips_empty_gold_lines() -> None:
    pairs = sts.load_semeval_tsv(STS_FIXTURES / "semeval-sts/2015/images.test.tsv")
    assert pairs.subset == "images"
    assert pairs.gold.tolist() == [4.2, 0.4, 2.6, 1.8]
    assert pairs.first[0] == "A dog runs on the grass."
    assert pairs.second[-1] == "A man walks a dog in the park."


def test_semeval_keeps_quotes_as_text() -> None:
    pairs = sts.load_semeval_tsv(STS_FIXTURES / "semeval-sts/2012/MSRpar.test.tsv")
    assert len(pairs) == 5
    assert pairs.first[2] == '"It\'s a huge black eye," said the publisher.'


def test_sts12_uses_senteval_subset_names_and_ignores_train_files() -> None:
    tasks = sts.load_sts_tasks(STS_FIXTURES)
    assert [pairs.subset for pairs in tasks["STS12"]] == ["MSRpar", "surprise.OnWN"]
    assert sum(len(pairs) for pairs in tasks["STS12"]) == 9
    assert set(tasks) == {"STS12", "STS15", "STS-B", "SICK-R"}


def test_senteval_layout_drops_pairs_with_empty_gold() -> None:
    tasks = sts.load_sts_tasks(STS_FIXTURES / "senteval")
    (pairs,) = tasks["STS13"]
    assert pairs.subset == "FNWN"
    assert pairs.gold.tolist() == [4.6, 0.2, 4.0]
    assert pairs.first == [
        "The cat sat on the mat.",
        "Rain is expected today.",
        "He bought a new car.",
    ]


def test_stsb_reads_unbalanced_quotes_and_extra_columns() -> None:
    pairs = sts.load_stsb_csv(STS_FIXTURES / "stsbenchmark/sts-test.csv")
    assert pairs.gold.tolist() == [2.5, 0.2, 4.8, 1.6]
    assert pairs.first[1] == 'He said "no.'
    assert pairs.second[1] == "The market closed up."
    assert pairs.second[3] == 'A "blue" train at a station.'


def test_sick_uses_header_and_relatedness_score() -> None:
    pairs = sts.load_sick(STS_FIXTURES / "sick2014/SICK_test_annotated.txt")
    assert pairs.gold.tolist() == [3.3, 4.9, 1.0, 2.9]
    assert pairs.first[1] == "A man is cutting a potato"
    assert pairs.second[1] == "A man is slicing a potato"


def test_bad_gold_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.test.tsv"
    path.write_text("4.0\ta\tb\nfour\tc\td\n", encoding="utf-8")
    with pytest.raises(BenchmarkDataError, match=r"bad\.test\.tsv, line 2, column 'gold'"):
        sts.load_semeval_tsv(path)


def test_sick_without_expected_header_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "SICK_test_annotated.txt"
    path.write_text("1\ta\tb\t3.0\tNEUTRAL\n", encoding="utf-8")
    with pytest.raises(BenchmarkDataError, match="header lacks column"):
        sts.load_sick(path)


def test_spearman_matches_scipy_and_pools_subsets(encoder: HashingEncoder) -> None:
    result = sts.evaluate_sts(encoder, STS_FIXTURES)
    tasks = sts.load_sts_tasks(STS_FIXTURES)
    for task, subsets in tasks.items():
        cosines, gold = [], []
        for pairs in subsets:
            first = encoder.encode_text(pairs.first)
            second = encoder.encode_text(pairs.second)
            cosines.append((first * second).sum(axis=1))
            gold.append(pairs.gold)
        expected = spearmanr(np.concatenate(cosines), np.concatenate(gold)).statistic
        assert result.scores[task]["spearman"] == pytest.approx(expected, abs=1e-6)
    assert "spearman[surprise.OnWN]" in result.scores["STS12"]
    assert result.absent_tasks == ["STS13", "STS14", "STS16"]
    present = [result.scores[task]["spearman"] for task in tasks]
    assert result.averages["spearman"] == pytest.approx(float(np.mean(present)))
    assert any("MSRvid" in note for note in result.notes)


def test_missing_directory_is_absent_not_zero(encoder: HashingEncoder, tmp_path: Path) -> None:
    assert sts.evaluate_sts(encoder, None).status == "absent"
    nowhere = sts.evaluate_sts(encoder, tmp_path / "missing")
    assert nowhere.status == "absent" and "does not exist" in nowhere.notes[0]
    empty = sts.evaluate_sts(encoder, tmp_path)
    assert empty.status == "absent"
    assert empty.absent_tasks == list(sts.TASKS)
    assert empty.averages == {}


def test_real_semeval_2016_and_sick(real_sts_dir: Path) -> None:
    answers = sts.load_semeval_tsv(real_sts_dir / "semeval-sts/2016/answer-answer.test.tsv")
    assert len(answers) == 254  # 1572 lines, 1318 with an empty gold field
    assert all(0.0 <= value <= 5.0 for value in answers.gold)
    sick = sts.load_sick(real_sts_dir / "sick2014/SICK_test_annotated.txt")
    assert len(sick) == 4927
    assert not any(text.endswith("\r") for text in sick.second)


def test_real_directory_layout(real_sts_dir: Path) -> None:
    tasks = sts.load_sts_tasks(real_sts_dir)
    assert set(tasks) == {"STS12", "STS13", "STS14", "STS15", "STS16", "SICK-R"}
    assert {pairs.subset for pairs in tasks["STS12"]} == {
        "MSRpar",
        "SMTeuroparl",
        "surprise.OnWN",
        "surprise.SMTnews",
    }
    assert all(math.isfinite(value) for pairs in tasks["STS15"] for value in pairs.gold)


def test_pretrained_sentence_encoder_scores_plausibly_on_real_data(real_sts_dir: Path) -> None:
    """A real encoder on real pairs: misaligned gold or a wrong column would sink this."""
    from paraclip_pipeline_tests.evaluation.support import MiniLMTextEncoder

    pairs = sts.load_semeval_tsv(real_sts_dir / "semeval-sts/2016/headlines.test.tsv")
    cosines = sts.cosine_scores(MiniLMTextEncoder(), pairs, batch_size=64)
    # all-MiniLM-L6-v2 reaches about 0.81 here; a bag-of-words baseline far less.
    assert spearmanr(cosines, pairs.gold).statistic > 0.75
