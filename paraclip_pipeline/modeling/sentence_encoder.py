"""Sentence embeddings (offline MiniLM by default) for whoever judges meaning.

The filter's meaning-kept rule and the WordNet rewriter's gate both use it, so it
lives here, below filtering and paraphrase, and imports neither. Loaded with plain
transformers (AutoModel + AutoTokenizer) and pooled the way sentence-transformers pools
all-MiniLM-L6-v2: mean over real tokens, then L2 norm.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

from paraclip_pipeline.modeling.pretrained import minilm_model_dir

# all-MiniLM-L6-v2 was trained on sequences of at most 256 word pieces.
DEFAULT_MAX_TOKENS = 256


class SentenceEncoder:
    """Maps texts to L2-normalised float32 sentence embeddings."""

    def __init__(
        self,
        model_dir: Path | None = None,
        batch_size: int = 128,
        device: str = "cpu",
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.model_dir = Path(model_dir) if model_dir is not None else minilm_model_dir()
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.max_tokens = max_tokens
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
        self.model = AutoModel.from_pretrained(self.model_dir, local_files_only=True)
        self.model.to(self.device).eval()

    @property
    def dimension(self) -> int:
        return int(self.model.config.hidden_size)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts``, shape (len(texts), dimension), rows of unit length.

        Identical texts are encoded once; unique texts are batched by length so a batch
        pads to similar lengths instead of to its longest outlier.
        """
        unique_texts, positions = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
        by_length = sorted(range(len(unique_texts)), key=lambda index: len(unique_texts[index]))
        unique_embeddings = np.empty((len(unique_texts), self.dimension), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(by_length), self.batch_size):
                batch = by_length[start : start + self.batch_size]
                unique_embeddings[batch] = self._encode_batch([unique_texts[i] for i in batch])
        return unique_embeddings[positions.reshape(-1)]

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        inputs = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.max_tokens,
            return_tensors="pt",
        ).to(self.device)
        token_states = self.model(**inputs).last_hidden_state
        mask = inputs["attention_mask"].unsqueeze(-1).to(token_states.dtype)
        pooled = (token_states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        normalised = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return normalised.float().cpu().numpy()


def paired_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``a`` with the same row of ``b`` (float32).

    Rows need not be normalised; a zero row has similarity 0 with anything.
    """
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(
            f"paired_cosine needs two 2-d arrays of one shape, got {a.shape}, {b.shape}"
        )
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    norms = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    dots = np.einsum("ij,ij->i", a64, b64)
    cosine = np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)
    return cosine.astype(np.float32)


@functools.cache
def shared_sentence_encoder(
    model_dir: Path | None = None, batch_size: int = 128, device: str = "cpu"
) -> SentenceEncoder:
    """One encoder per process and setting: weights never change, so runs executed in one
    process (``paraclip demo``, tests, the WordNet rewriter's two stages) load it once."""
    return SentenceEncoder(model_dir=model_dir, batch_size=batch_size, device=device)
