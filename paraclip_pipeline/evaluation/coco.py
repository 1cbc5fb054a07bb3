"""COCO Karpathy-split captions, paraphrased queries and the image gallery's embeddings.

- Captions: Karpathy's ``dataset_coco.json``: ``{"images": [{"filepath", "filename",
  "split", "cocoid", "sentences": [{"raw": ...}, ...]}, ...]}``.
- Paraphrased queries (Cheng et al. style): JSON list or JSON Lines of objects with
  ``caption`` (the original query) and ``paraphrase``.
- Images are read from ``images_dir/filepath/filename``; alternatively an ``.npz`` with
  arrays ``cocoid`` and ``embedding`` supplies image embeddings computed once (valid
  because ParaCLIP keeps the image tower frozen).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from paraclip_pipeline.evaluation.encoders import TextImageEncoder, checked_embeddings
from paraclip_pipeline.evaluation.errors import BenchmarkDataError
from paraclip_pipeline.evaluation.reading import read_json_file

# Images decoded per encode_images call; bounds memory for a 5k-image gallery.
IMAGE_CHUNK = 256


@dataclass(frozen=True)
class CocoImage:
    cocoid: int
    path: Path
    captions: tuple[str, ...]


@dataclass(frozen=True)
class ParaphrasedQuery:
    original: str
    paraphrase: str


def load_karpathy_split(captions_json: Path, images_dir: Path, split: str) -> list[CocoImage]:
    """Images of one Karpathy split (``"test"`` is the 5k test set) with their captions."""
    data = read_json_file(captions_json)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise BenchmarkDataError(captions_json, "expected an object with an 'images' list")
    images = []
    for position, entry in enumerate(data["images"]):
        try:
            if entry["split"] != split:
                continue
            captions = tuple(sentence["raw"] for sentence in entry["sentences"])
            image = CocoImage(
                cocoid=int(entry["cocoid"]),
                path=images_dir / entry.get("filepath", "") / entry["filename"],
                captions=captions,
            )
        except (KeyError, TypeError, ValueError) as error:
            raise BenchmarkDataError(
                captions_json, f"images[{position}] is malformed ({error!r})", column="images"
            ) from None
        if not captions:
            raise BenchmarkDataError(
                captions_json, f"images[{position}] has no sentences", column="sentences"
            )
        images.append(image)
    if not images:
        raise BenchmarkDataError(captions_json, f"no images in split {split!r}")
    return images


def load_paraphrased_queries(path: Path) -> list[ParaphrasedQuery]:
    """Original/paraphrased query pairs from a JSON list or a JSON Lines file."""
    text = path.read_text(encoding="utf-8")
    try:
        records = json.loads(text) if text.lstrip().startswith("[") else None
    except json.JSONDecodeError as error:
        raise BenchmarkDataError(path, f"not valid JSON ({error})") from None
    if records is None:
        records = []
        for line, raw in enumerate(text.splitlines(), start=1):
            if raw.strip():
                try:
                    records.append(json.loads(raw))
                except json.JSONDecodeError as error:
                    raise BenchmarkDataError(path, f"not valid JSON ({error})", line=line) from None
    queries = []
    for position, record in enumerate(records, start=1):
        for key in ("caption", "paraphrase"):
            value = record.get(key) if isinstance(record, dict) else None
            if not isinstance(value, str) or not value.strip():
                raise BenchmarkDataError(
                    path, f"record {position} needs a non-empty string", column=key
                )
        queries.append(ParaphrasedQuery(record["caption"], record["paraphrase"]))
    if not queries:
        raise BenchmarkDataError(path, "holds no query pairs")
    return queries


def _open_rgb(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (FileNotFoundError, UnidentifiedImageError, OSError) as error:
        raise BenchmarkDataError(path, f"cannot read image ({error})") from None


def _chunks(items: Sequence[CocoImage], size: int) -> Iterator[Sequence[CocoImage]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def load_image_embeddings(path: Path, images: Sequence[CocoImage]) -> np.ndarray:
    """Rows of a precomputed ``.npz`` (``cocoid``, ``embedding``) in the order of ``images``."""
    with np.load(path) as archive:
        missing_keys = {"cocoid", "embedding"} - set(archive.files)
        if missing_keys:
            raise BenchmarkDataError(path, f"lacks array(s) {sorted(missing_keys)}")
        ids = archive["cocoid"].astype(np.int64)
        embeddings = archive["embedding"]
    row_of = {int(cocoid): row for row, cocoid in enumerate(ids)}
    absent = [image.cocoid for image in images if image.cocoid not in row_of]
    if absent:
        raise BenchmarkDataError(
            path, f"has no embedding for {len(absent)} image(s), e.g. cocoid {absent[0]}"
        )
    rows = embeddings[[row_of[image.cocoid] for image in images]]
    return checked_embeddings(rows, len(images), f"image embeddings in {path}")


def embed_images(
    encoder: TextImageEncoder,
    images: Sequence[CocoImage],
    batch_size: int,
    embeddings_file: Path | None = None,
) -> np.ndarray:
    """Gallery embeddings, from ``embeddings_file`` when given, else by encoding the images."""
    if embeddings_file is not None:
        return load_image_embeddings(embeddings_file, images)
    parts = []
    for chunk in _chunks(images, IMAGE_CHUNK):
        pixels = [_open_rgb(image.path) for image in chunk]
        parts.append(
            checked_embeddings(
                encoder.encode_images(pixels, batch_size=batch_size), len(pixels), "encode_images"
            )
        )
    return np.concatenate(parts)
