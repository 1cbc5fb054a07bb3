"""Prepared training data on disk: its file names and the handle training reads it by.

``training.prepare`` writes the directory (``prepared_dir_for``, beside the checkpoint);
the stream, the loop and the distributed workers open it with ``PreparedData``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paraclip_pipeline import schema

TRAIN_FILE = "train.parquet"
EMBEDDINGS_FILE = "image_embeddings.npy"
HAS_IMAGE_FILE = "has_image.npy"
META_FILE = "prepared.json"
TRAIN_COLUMNS = [schema.CAPTION_ID, schema.TEXT, schema.PARAPHRASE_1, schema.PARAPHRASE_2]


@dataclass(frozen=True)
class PreparedData:
    """The prepared train rows on disk and what training needs to know about them."""

    directory: str
    rows: int
    dim: int
    rows_with_image: int
    image_embedding_models: frozenset[str]
    rows_without_embedding_row: int
    # Train rows dropped because a smaller caption_id had the same normalised caption.
    duplicate_captions_dropped: int
    fingerprint: str
    sources: list[str]

    def __len__(self) -> int:
        return self.rows

    @property
    def train_path(self) -> Path:
        return Path(self.directory) / TRAIN_FILE

    def image_rows(self, rows: np.ndarray) -> np.ndarray:
        """Embedding rows ``rows`` (float32, a copy) read through a mapping of the .npy that
        is dropped at once: the process never keeps the file's pages resident."""
        if not self.dim:
            return np.zeros((len(rows), 0), np.float32)
        return np.array(np.load(Path(self.directory) / EMBEDDINGS_FILE, mmap_mode="r")[rows])

    def has_image(self) -> np.ndarray:
        """(rows,) bool, one byte a row."""
        return np.load(Path(self.directory) / HAS_IMAGE_FILE)

    @classmethod
    def open(cls, directory: Path) -> PreparedData:
        meta = json.loads((Path(directory) / META_FILE).read_text(encoding="utf-8"))
        models = frozenset(meta.pop("image_embedding_models"))
        directory = str(Path(directory).resolve())
        return cls(**meta, image_embedding_models=models, directory=directory)

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def prepared_dir_for(output_dir: Path) -> Path:
    return Path(output_dir).with_name(f"{Path(output_dir).name}.train-data")
