"""Each loader on files in the exact upstream format, with its quirks, and on broken input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from paraclip_pipeline.evaluation.errors import BenchmarkDataError
from paraclip_pipeline.evaluation.public.benchmarks import find_benchmark_files
from paraclip_pipeline.evaluation.public.formats.caption_groups import load_caption_groups
from paraclip_pipeline.evaluation.public.formats.mrpc import load_mrpc
from paraclip_pipeline.evaluation.public.formats.paws import load_paws
from paraclip_pipeline.evaluation.public.formats.sugarcrepe_pp import load_sugarcrepe_pp
from paraclip_pipeline.evaluation.sts import load_stsb_csv
from paraclip_pipeline_tests.evaluation.public.support import CAPTIONS, write_public_fixture


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return write_public_fixture(tmp_path / "eval")


def test_layout_finds_every_format_and_skips_mrpc_sentence_file(data_dir: Path) -> None:
    (data_dir / "mrpc" / "msr_paraphrase_data.txt").write_text("Sentence ID\tString\n")
    found = [
        (name, path.relative_to(data_dir).as_posix())
        for name, path in find_benchmark_files(data_dir)
    ]
    assert found == [
        ("caption_groups", "f30k_captions_dev/captions.txt"),
        ("sugarcrepe_pp", "sugarcrepe_pp/swap_att.json"),
        ("paws", "paws/test.tsv"),
        ("mrpc", "mrpc/msr_paraphrase_test.txt"),
        ("stsb", "stsb/sts-test.csv"),
    ]


def test_captions_without_final_newline_form_groups(data_dir: Path) -> None:
    path = data_dir / "f30k_captions_dev" / "captions.txt"
    assert not path.read_bytes().endswith(b"\n")
    groups = load_caption_groups(path)
    assert groups.image_count == 3
    assert groups.captions == CAPTIONS


def test_caption_count_not_a_multiple_of_the_group_size_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "captions.txt"
    path.write_text("\n".join(CAPTIONS[:7]) + "\n")
    with pytest.raises(BenchmarkDataError, match=r"captions.txt: 7 caption lines .* line 6"):
        load_caption_groups(path)


def test_empty_caption_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "captions.txt"
    path.write_text("a\nb\n\nd\ne\n")
    with pytest.raises(BenchmarkDataError, match=r"captions.txt, line 3: empty caption"):
        load_caption_groups(path)


def test_sugarcrepe_keeps_items_whose_paraphrase_equals_the_caption(data_dir: Path) -> None:
    items = load_sugarcrepe_pp(data_dir / "sugarcrepe_pp" / "swap_att.json")
    assert len(items) == 3
    assert items.identical_paraphrases == 1
    assert items.negative[1] == "A cat sleeps on a red sofa."


def test_sugarcrepe_item_without_negative_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([{"caption": "a", "caption2": "b"}]))
    with pytest.raises(BenchmarkDataError, match=r"bad.json, row 0, column 'negative_caption'"):
        load_sugarcrepe_pp(path)


def test_paws_quotes_are_text_and_an_upstream_header_is_skipped(data_dir: Path) -> None:
    pairs = load_paws(data_dir / "paws" / "test.tsv")
    assert pairs.first[0] == 'The cat sat on " the mat .'
    assert pairs.is_paraphrase.tolist() == [True, False, True, False]
    with_header = data_dir / "paws" / "train.tsv"
    with_header.write_text(
        "id\tsentence1\tsentence2\tlabel\n" + (data_dir / "paws" / "test.tsv").read_text()
    )
    assert len(load_paws(with_header)) == 4


def test_paws_bad_label_and_short_row_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "dev.tsv"
    path.write_text("1\ta\tb\t1\n2\tc\td\tyes\n")
    with pytest.raises(BenchmarkDataError, match=r"dev.tsv, line 2, column 'label'"):
        load_paws(path)
    path.write_text("1\ta\tb\t1\n2\tc\t0\n")
    with pytest.raises(BenchmarkDataError, match=r"dev.tsv, line 2: expected 4"):
        load_paws(path)


def test_mrpc_with_bom_header_and_unbalanced_quotes(data_dir: Path) -> None:
    pairs = load_mrpc(data_dir / "mrpc" / "msr_paraphrase_test.txt")
    assert len(pairs) == 3
    assert pairs.first[2] == 'They had "published an advertisement.'
    assert pairs.is_paraphrase.tolist() == [True, False, True]


def test_mrpc_mirror_without_header_starts_with_bom_then_data(tmp_path: Path) -> None:
    path = tmp_path / "msr_paraphrase_train.txt"
    path.write_text("\ufeff1\t1\t2\tA b.\tA c.\n0\t3\t4\tD e.\tF g.\n", encoding="utf-8")
    pairs = load_mrpc(path)
    assert pairs.first == ["A b.", "D e."]


def test_mrpc_single_label_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "msr_paraphrase_train.txt"
    path.write_text("1\t1\t2\tA b.\tA c.\n1\t3\t4\tD e.\tF g.\n", encoding="utf-8")
    with pytest.raises(BenchmarkDataError, match="same label"):
        load_mrpc(path)


def test_stsb_rows_with_extra_columns_are_read(data_dir: Path) -> None:
    pairs = load_stsb_csv(data_dir / "stsb" / "sts-test.csv")
    assert len(pairs) == 4
    assert pairs.second[2] == "Asian stocks drop."
    np.testing.assert_allclose(pairs.gold, [5.0, 0.5, 3.0, 1.2])
