"""``paraclip evaluate`` end to end on a tiny data directory (tiny models, offline)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from paraclip_pipeline.cli import main
from paraclip_pipeline.evaluation.public.render import contains_zero
from paraclip_pipeline.evaluation.public.suite import RECORD_KEYS, run_public_benchmarks
from paraclip_pipeline_tests.evaluation.public.support import write_public_fixture
from paraclip_pipeline_tests.evaluation.support import HashingEncoder

EXPECTED_METRICS = [
    ("caption_groups", "f30k_captions_dev/captions.txt", "R@1"),
    ("caption_groups", "f30k_captions_dev/captions.txt", "mAP"),
    ("caption_groups", "f30k_captions_dev/captions.txt", "AO@10"),
    ("caption_groups", "f30k_captions_dev/captions.txt", "JS@10"),
    ("sugarcrepe_pp", "sugarcrepe_pp/swap_att.json", "accuracy"),
    ("paws", "paws/test.tsv", "AP"),
    ("mrpc", "mrpc/msr_paraphrase_test.txt", "AP"),
    ("stsb", "stsb/sts-test.csv", "spearman"),
]


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # The baseline's embedding cache lives under the storage root: keep it in tmp_path.
    monkeypatch.setenv("PARACLIP_STORAGE_ROOT", str(tmp_path / "storage"))
    return write_public_fixture(tmp_path / "eval")


def _tiny_hf_model_dir(target: Path) -> Path:
    """A random 2-layer BERT with MiniLM's tokenizer, saved as a bare HF model directory."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from paraclip_pipeline.modeling.pretrained import minilm_model_dir

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64,
    )  # fmt: skip
    BertModel(config).save_pretrained(target)
    AutoTokenizer.from_pretrained(minilm_model_dir()).save_pretrained(target)
    return target


def test_suite_encodes_each_text_once_and_scores_every_file(data_dir: Path) -> None:
    model, baseline = HashingEncoder(seed=1), HashingEncoder(seed=2)
    messages: list[str] = []
    records = run_public_benchmarks(
        data_dir, model, baseline, resamples=200, progress=messages.append
    )
    assert [(r["benchmark"], r["file"], r["metric"]) for r in records] == EXPECTED_METRICS
    for record in records:
        assert set(RECORD_KEYS) <= set(record)
        assert record["delta"] == pytest.approx(record["model"] - record["baseline"], abs=1e-3)
        assert record["ci_low"] <= record["delta"] + 1e-9 <= record["ci_high"] + 2e-9
    distinct = len({t for r in [data_dir] for t in _all_texts(r)})
    assert sum(model.text_calls) == distinct == sum(baseline.text_calls)
    assert any("scored stsb/sts-test.csv" in message for message in messages)
    scpp = next(r for r in records if r["metric"] == "accuracy")
    assert scpp["notes"] == ["1 item(s) with caption2 == caption kept"]


def _all_texts(data_dir: Path) -> list[str]:
    from paraclip_pipeline.evaluation.public.benchmarks import load_benchmark_files

    return [text for item in load_benchmark_files(data_dir) for text in item.texts]


def test_same_encoder_gives_zero_deltas_and_marks_them(data_dir: Path) -> None:
    encoder = HashingEncoder(seed=1)
    records = run_public_benchmarks(data_dir, encoder, encoder, resamples=50)
    assert all(r["delta"] == r["ci_low"] == r["ci_high"] == 0 for r in records)
    assert all(contains_zero(r) for r in records)
    assert len(encoder.text_calls) > 0 and sum(encoder.text_calls) == len(set(_all_texts(data_dir)))


def test_evaluate_pretrained_tiny_profile_end_to_end(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json, out_html = tmp_path / "scores.json", tmp_path / "scores.html"
    code = main(
        [
            "evaluate", "--model", "pretrained", "--profile", "tiny-random", "--data",
            str(data_dir), "--json", str(out_json), "--html", str(out_html), "--resamples", "100",
        ]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "f30k_captions_dev/captions.txt" in printed and "spearman" in printed
    records = json.loads(out_json.read_text())
    assert [(r["benchmark"], r["file"], r["metric"]) for r in records] == EXPECTED_METRICS
    assert all(r["delta"] == 0 for r in records)  # the baseline scored against itself
    assert "<table>" in out_html.read_text()


def test_evaluate_hf_model_dir_against_the_profile_baseline(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir = _tiny_hf_model_dir(tmp_path / "tiny-bert")
    out_json = tmp_path / "scores.json"
    code = main(
        [
            "evaluate", "--model", str(model_dir), "--profile", "tiny-random", "--data",
            str(data_dir), "--json", str(out_json), "--resamples", "100",
        ]
    )  # fmt: skip
    assert code == 0
    records = json.loads(out_json.read_text())
    assert len(records) == len(EXPECTED_METRICS)
    assert any(r["delta"] != 0 for r in records)
    assert all(np.isfinite(r["model"]) for r in records)


def test_evaluate_names_the_bad_file(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (data_dir / "paws" / "test.tsv").write_text("1\ta\tb\n")
    code = main(
        ["evaluate", "--model", "pretrained", "--profile", "tiny-random", "--data", str(data_dir)]
    )
    assert code == 2
    assert "paws/test.tsv, line 1: expected 4" in capsys.readouterr().err


def test_evaluate_without_data_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PARACLIP_EVAL_DATA", raising=False)
    assert main(["evaluate", "--model", "pretrained"]) == 2
    assert "PARACLIP_EVAL_DATA" in capsys.readouterr().err


def test_eval_data_setting_is_read_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from paraclip_pipeline.settings import EVAL_DATA_ENV, Settings

    monkeypatch.setenv(EVAL_DATA_ENV, str(tmp_path))
    assert Settings.from_env().eval_data_dir == tmp_path.resolve()
    monkeypatch.delenv(EVAL_DATA_ENV)
    assert Settings.from_env().eval_data_dir is None


def test_hf_model_dir_with_a_dense_module_is_refused(tmp_path: Path) -> None:
    from paraclip_pipeline.evaluation.public.models import ModelSpecError, transformer_dir

    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ]
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "modules.json").write_text(json.dumps(modules))
    assert transformer_dir(tmp_path) == tmp_path
    dense = {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}
    (tmp_path / "modules.json").write_text(json.dumps([*modules, dense]))
    with pytest.raises(ModelSpecError, match=r"modules\.json: modules Dense are not applied"):
        transformer_dir(tmp_path)
