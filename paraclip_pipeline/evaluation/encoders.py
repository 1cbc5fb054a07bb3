"""The encoder protocol the suite evaluates, and checks on what an encoder returns.

The suite never imports the modeling package: anything with these two methods (the
model engineer's ``LoadedClip``, a test double) can be evaluated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

from paraclip_pipeline.evaluation.errors import EncoderOutputError

# float32 round-off over a few hundred dimensions stays far below this.
NORM_TOLERANCE = 1e-3


@runtime_checkable
class TextImageEncoder(Protocol):
    """A CLIP-like model: both methods return L2-normalised float32 rows, one per input."""

    def encode_text(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray: ...

    def encode_images(self, images: Sequence[Image.Image], batch_size: int = 64) -> np.ndarray: ...


def checked_embeddings(embeddings: np.ndarray, expected_rows: int, what: str) -> np.ndarray:
    """Return ``embeddings`` as float32 after checking shape and unit norm.

    Cosine similarity is a plain dot product only for unit rows, so an encoder that
    forgot to normalise would silently skew every score; fail loudly instead.
    """
    array = np.asarray(embeddings)
    if array.ndim != 2 or array.shape[0] != expected_rows:
        raise EncoderOutputError(
            f"{what}: expected a 2-d array with {expected_rows} rows, got shape {array.shape}"
        )
    array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        raise EncoderOutputError(f"{what}: embeddings contain NaN or infinite values")
    norms = np.linalg.norm(array, axis=1)
    if expected_rows and np.abs(norms - 1.0).max() > NORM_TOLERANCE:
        worst = int(np.abs(norms - 1.0).argmax())
        raise EncoderOutputError(
            f"{what}: row {worst} has L2 norm {norms[worst]:.4f}; the encoder must return "
            "L2-normalised embeddings"
        )
    return array


def encode_unique_texts(
    encoder: TextImageEncoder, texts: Sequence[str], batch_size: int
) -> tuple[np.ndarray, dict[str, int]]:
    """Encode each distinct text once; return the embeddings and each text's row index."""
    row_of: dict[str, int] = {}
    for text in texts:
        row_of.setdefault(text, len(row_of))
    unique = list(row_of)
    if not unique:
        return np.zeros((0, 0), dtype=np.float32), row_of
    embeddings = encoder.encode_text(unique, batch_size=batch_size)
    return checked_embeddings(embeddings, len(unique), "encode_text"), row_of


def encode_texts(encoder: TextImageEncoder, texts: Sequence[str], batch_size: int) -> np.ndarray:
    """Embeddings row-aligned with ``texts``, encoding repeated texts only once."""
    embeddings, row_of = encode_unique_texts(encoder, texts, batch_size)
    return embeddings[[row_of[text] for text in texts]]
