"""Embeddings of encoders whose weights never change, kept between runs.

Encoding every benchmark text is the long part of the public suite (about 45k distinct
texts, ~5 minutes per encoder on 2 cores), and the baseline (the pretrained encoder a
user starts from) gives the same vectors every run: caching it halves a second report.
Entries are keyed by the encoder's ``embedding_cache_key`` (a digest of its weights and
tokenizer; an encoder declares itself cacheable by having one) and by the sha256 of
each text, so another model or a changed text never reuses a vector. Each run that
encodes new texts adds one Parquet chunk, written atomically, under
``<storage root>/cache/embeddings/<key digest>/``; a chunk that cannot be read, or that
holds the wrong key or shape, is ignored with a warning and deleted, so its texts are
encoded again and written into a fresh chunk.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from paraclip_pipeline.evaluation.encoders import NORM_TOLERANCE, TextImageEncoder
from paraclip_pipeline.storage import write_parquet_atomic

logger = logging.getLogger(__name__)

CACHE_KEY_ATTRIBUTE = "embedding_cache_key"
CACHE_SUBDIR = ("cache", "embeddings")
KEY_METADATA = b"paraclip.embedding_cache_key"
TEXT_HASH_COLUMN = "text_sha256"
EMBEDDING_COLUMN = "embedding"
CHUNK_SUFFIX = ".parquet"


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def declared_cache_key(encoder: object) -> str | None:
    """The key of an encoder that declares itself cacheable, else None."""
    key = getattr(encoder, CACHE_KEY_ATTRIBUTE, None)
    return str(key) if key else None


@dataclass
class CacheableEncoder:
    """An encoder whose weights never change, declared cacheable under ``embedding_cache_key``
    (e.g. the pretrained baseline, keyed by a digest of its weights)."""

    encoder: TextImageEncoder
    embedding_cache_key: str

    def encode_text(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        return self.encoder.encode_text(texts, batch_size)

    def encode_images(self, images: Sequence[Image.Image], batch_size: int = 64) -> np.ndarray:
        return self.encoder.encode_images(images, batch_size)


class EmbeddingCache:
    """Text embeddings by (encoder key, text sha256) under ``<storage root>/cache/embeddings``."""

    def __init__(self, storage_root: Path) -> None:
        self.root = Path(storage_root).joinpath(*CACHE_SUBDIR)

    def directory(self, key: str) -> Path:
        return self.root / hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]

    def lookup(self, key: str, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Embeddings of those ``texts`` cached under ``key`` (the others are absent)."""
        wanted = {text_digest(text): text for text in texts}
        found: dict[str, np.ndarray] = {}
        directory = self.directory(key)
        for chunk in sorted(directory.glob(f"*{CHUNK_SUFFIX}")) if directory.is_dir() else []:
            rows = self._read_chunk(chunk, key)
            for digest, embedding in rows.items():
                text = wanted.get(digest)
                if text is not None:
                    found[text] = embedding
        return found

    def store(self, key: str, embeddings: dict[str, np.ndarray]) -> Path | None:
        """Write one new chunk holding ``embeddings`` (text -> row); None when empty."""
        if not embeddings:
            return None
        digests = [text_digest(text) for text in embeddings]
        matrix = np.stack(list(embeddings.values())).astype(np.float32)
        flat = pa.array(matrix.reshape(-1), pa.float32())
        table = pa.table(
            {
                TEXT_HASH_COLUMN: pa.array(digests, pa.string()),
                EMBEDDING_COLUMN: pa.FixedSizeListArray.from_arrays(flat, matrix.shape[1]),
            }
        ).replace_schema_metadata({KEY_METADATA: key.encode("utf-8")})
        name = hashlib.sha256("".join(sorted(digests)).encode()).hexdigest()[:32]
        return write_parquet_atomic(table, self.directory(key) / f"{name}{CHUNK_SUFFIX}")

    def _read_chunk(self, path: Path, key: str) -> dict[str, np.ndarray]:
        try:
            table = pq.read_table(path)
            problem = _chunk_problem(table, key)
        except (OSError, pa.ArrowException) as error:
            problem = f"not a readable Parquet file ({error})"
        if problem is None:
            matrix = _matrix(table)
            digests = table.column(TEXT_HASH_COLUMN).to_pylist()
            return dict(zip(digests, matrix, strict=True))
        logger.warning(
            "embedding cache: ignoring %s: %s; its texts are encoded again and rewritten",
            path,
            problem,
        )
        path.unlink(missing_ok=True)
        return {}


def _matrix(table: pa.Table) -> np.ndarray:
    column = table.column(EMBEDDING_COLUMN).combine_chunks()
    width = column.type.list_size
    return column.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)


def _chunk_problem(table: pa.Table, key: str) -> str | None:
    """Why a chunk cannot be trusted, or None."""
    stored_key = (table.schema.metadata or {}).get(KEY_METADATA, b"").decode("utf-8", "replace")
    if stored_key != key:
        return f"written for encoder {stored_key!r}, not {key!r}"
    if table.column_names != [
        TEXT_HASH_COLUMN,
        EMBEDDING_COLUMN,
    ] or not pa.types.is_fixed_size_list(table.schema.field(EMBEDDING_COLUMN).type):
        return f"unexpected columns {table.schema}"
    matrix = _matrix(table)
    if not np.isfinite(matrix).all():
        return "embeddings contain NaN or infinite values"
    if len(matrix) and np.abs(np.linalg.norm(matrix, axis=1) - 1.0).max() > NORM_TOLERANCE:
        return "embeddings are not L2-normalised"
    return None
