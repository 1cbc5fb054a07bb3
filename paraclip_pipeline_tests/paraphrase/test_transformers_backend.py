"""The transformers backend on tiny randomly initialised models (no weights exist offline).

The answers are noise, but batching, padding, prompt trimming, seeding and the
seq2seq/causal switch are all exercised for real.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import (
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    T5Config,
    T5ForConditionalGeneration,
)

from paraclip_pipeline import schema
from paraclip_pipeline.modeling.pretrained import minilm_model_dir
from paraclip_pipeline.paraphrase.backends.transformers_local import TransformersBackend
from paraclip_pipeline.paraphrase.config import ParaphraserConfig
from paraclip_pipeline.paraphrase.engine import run_paraphrase_stage
from paraclip_pipeline.paraphrase.errors import ParaphraseConfigError
from paraclip_pipeline_tests.paraphrase.builders import stage1_rows

CAPTIONS = ["a dog on a beach", "two cats asleep on a red sofa", "city street at night"]


def _tiny_model_dir(directory: Path, kind: str) -> Path:
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(minilm_model_dir())
    vocab = len(tokenizer)
    if kind == "causal":
        model = GPT2LMHeadModel(
            GPT2Config(vocab_size=vocab, n_embd=32, n_layer=1, n_head=2, n_positions=512)
        )
    else:
        model = T5ForConditionalGeneration(
            T5Config(
                vocab_size=vocab,
                d_model=32,
                d_kv=16,
                d_ff=64,
                num_layers=1,
                num_heads=2,
                decoder_start_token_id=tokenizer.pad_token_id,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.sep_token_id,
            )
        )
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.mark.parametrize("kind", ["causal", "seq2seq"])
def test_batched_generation_is_seeded_and_complete(kind: str, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    model_dir = _tiny_model_dir(tmp_path / kind, kind)
    config = ParaphraserConfig(
        backend="transformers", model_path=str(model_dir), max_tokens=6, batch_size=2
    )
    tables = []
    for run in range(2):
        backend = TransformersBackend(config)
        result = run_paraphrase_stage(
            stage1_rows(CAPTIONS), stage=1, config=config, cache_dir=tmp_path / f"c{run}",
            backend=backend,
        )  # fmt: skip
        assert backend.calls == len(CAPTIONS)
        assert result.stats.tokens > 0
        tables.append(result.table)
    statuses = tables[0].column(schema.STATUS_1).to_pylist()
    assert set(statuses) <= {"ok", "empty", "echo", "refused"}
    assert tables[0].equals(tables[1])  # the seed makes sampling reproducible


def test_missing_model_directory_is_named(tmp_path: Path) -> None:
    config = ParaphraserConfig(backend="transformers", model_path=str(tmp_path / "nowhere"))
    with pytest.raises(ParaphraseConfigError, match="nowhere"):
        TransformersBackend(config)
