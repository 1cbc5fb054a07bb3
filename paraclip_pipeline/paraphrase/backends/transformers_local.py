"""A local Hugging Face model directory (seq2seq or causal), batched generation on CPU/GPU."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from paraclip_pipeline.paraphrase.backends.base import (
    Completion,
    ParaphraseBackend,
    ParaphraseRequest,
)
from paraclip_pipeline.paraphrase.config import ParaphraserConfig
from paraclip_pipeline.paraphrase.errors import ParaphraseConfigError
from paraclip_pipeline.paraphrase.prompts import render_few_shot_prompt

DEFAULT_SEED = 0


class TransformersBackend(ParaphraseBackend):
    name = "transformers"
    default_model = ""

    def __init__(self, config: ParaphraserConfig) -> None:
        super().__init__(config)
        self._model_dir = Path(config.model_path or "")
        if not (self._model_dir / "config.json").is_file():
            raise ParaphraseConfigError(
                f"model_path {self._model_dir} is not a Hugging Face model directory "
                "(no config.json)"
            )
        self._loaded: tuple[Any, Any, bool] | None = None

    @property
    def model_name(self) -> str:
        return self.config.model or self._model_dir.name

    def _load(self) -> tuple[Any, Any, bool]:
        if self._loaded is None:
            from transformers import (
                AutoConfig,
                AutoModelForCausalLM,
                AutoModelForSeq2SeqLM,
                AutoTokenizer,
            )

            is_seq2seq = bool(AutoConfig.from_pretrained(self._model_dir).is_encoder_decoder)
            model_class = AutoModelForSeq2SeqLM if is_seq2seq else AutoModelForCausalLM
            model = model_class.from_pretrained(self._model_dir).eval()
            # Causal models continue the prompt, so batches are padded on the left.
            tokenizer = AutoTokenizer.from_pretrained(
                self._model_dir, padding_side="right" if is_seq2seq else "left"
            )
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
            self._loaded = (model, tokenizer, is_seq2seq)
        return self._loaded

    def _prompt(self, request: ParaphraseRequest, tokenizer: Any, is_seq2seq: bool) -> str:
        if is_seq2seq:
            return request.prompt
        if tokenizer.chat_template:
            return tokenizer.apply_chat_template(
                [{"role": "user", "content": request.prompt}],
                tokenize=False,
                add_generation_prompt=True,
            )
        if self.config.few_shot:
            return render_few_shot_prompt(
                self.config.template(request.stage), request.stage, request.text
            )
        return request.prompt

    def _generate(self, requests: Sequence[ParaphraseRequest]) -> list[Completion]:
        import torch
        from transformers import set_seed

        model, tokenizer, is_seq2seq = self._load()
        config = self.config
        completions: list[Completion] = []
        for start in range(0, len(requests), config.batch_size):
            batch = requests[start : start + config.batch_size]
            set_seed(DEFAULT_SEED if config.seed is None else config.seed)
            encoded = tokenizer(
                [self._prompt(request, tokenizer, is_seq2seq) for request in batch],
                return_tensors="pt",
                padding=True,
            )
            with torch.inference_mode():
                generated = model.generate(
                    # Only these two: BERT-style tokenizers add token_type_ids, which
                    # generative models reject.
                    input_ids=encoded["input_ids"],
                    attention_mask=encoded["attention_mask"],
                    do_sample=config.temperature > 0,
                    temperature=config.temperature if config.temperature > 0 else None,
                    top_p=config.top_p,
                    max_new_tokens=config.max_tokens,
                    pad_token_id=tokenizer.pad_token_id,
                )
            # Causal outputs repeat the prompt; keep only the new tokens.
            answers = generated if is_seq2seq else generated[:, encoded["input_ids"].shape[1] :]
            prompt_lengths = encoded["attention_mask"].sum(dim=1).tolist()
            for answer, prompt_tokens in zip(answers, prompt_lengths, strict=True):
                new_tokens = int((answer != tokenizer.pad_token_id).sum())
                text = tokenizer.decode(answer, skip_special_tokens=True)
                completions.append(
                    Completion(
                        text=text, prompt_tokens=int(prompt_tokens), completion_tokens=new_tokens
                    )
                )
        return completions
