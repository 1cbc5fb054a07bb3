"""Test doubles and builders of benchmark fixtures in the upstream formats."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data as skimage_data

FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures"
STS_FIXTURES = FIXTURES_DIR / "sts"
# CC0 photos shipped inside scikit-image (no download needed).
PHOTO_LOADERS: dict[str, Callable[[], np.ndarray]] = {
    "astronaut.png": skimage_data.astronaut,
    "coffee.png": skimage_data.coffee,
    "chelsea.png": skimage_data.chelsea,
    "rocket.png": skimage_data.rocket,
}
THUMBNAIL = (6, 6)


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)


class HashingEncoder:
    """Deterministic stand-in for CLIP: hashed words and word bigrams, image thumbnails.

    Both sides go through fixed random projections, so similarities are meaningful
    (shared words -> closer texts) and reproducible, with no model weights.
    """

    def __init__(self, dim: int = 48, seed: int = 0, buckets: int = 1024) -> None:
        rng = np.random.default_rng(seed)
        self.buckets = buckets
        self.text_projection = rng.standard_normal((buckets + 1, dim))
        self.image_projection = rng.standard_normal((THUMBNAIL[0] * THUMBNAIL[1] * 3 + 1, dim))
        self.text_calls: list[int] = []

    def _bucket(self, feature: str) -> int:
        return int(hashlib.sha1(feature.encode()).hexdigest(), 16) % self.buckets

    def encode_text(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        self.text_calls.append(len(texts))
        counts = np.zeros((len(texts), self.buckets + 1))
        counts[:, -1] = 0.1  # a constant feature keeps empty texts away from the zero vector
        for row, text in enumerate(texts):
            words = re.findall(r"\w+", text.lower())
            for feature in [*words, *(f"{a} {b}" for a, b in itertools.pairwise(words))]:
                counts[row, self._bucket(feature)] += 1.0
        return _unit_rows(counts @ self.text_projection)

    def encode_images(self, images: Sequence[Image.Image], batch_size: int = 64) -> np.ndarray:
        pixels = np.stack(
            [
                np.asarray(image.convert("RGB").resize(THUMBNAIL), dtype=np.float64)
                for image in images
            ]
        )
        features = np.concatenate(
            [pixels.reshape(len(images), -1) / 255.0 - 0.5, np.ones((len(images), 1))], axis=1
        )
        return _unit_rows(features @ self.image_projection)


def write_photos(directory: Path) -> list[str]:
    """Write the scikit-image photos as PNG files; return their file names."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, load in PHOTO_LOADERS.items():
        Image.fromarray(load()).save(directory / name)
    return list(PHOTO_LOADERS)


def write_aro_fixture(aro_dir: Path) -> None:
    """ARO-release layout: both annotation JSONs and an images/ directory."""
    photos = write_photos(aro_dir / "images")
    relation_cases = []
    relations = [
        ("on", "the mug", "the table"),
        ("on", "the cat", "the sofa"),
        ("behind", "the rocket", "the tower"),
        ("next to", "the man", "the flag"),  # excluded by the ARO authors (symmetric)
    ]
    for number, (relation, subject, obj) in enumerate(relations * 2):
        relation_cases.append(
            {
                "image_id": str(number),
                "image_path": photos[number % len(photos)],
                "bbox_x": 10 + number,
                "bbox_y": 20,
                "bbox_w": 100 + 3 * number,
                "bbox_h": 80,
                "true_caption": f"{subject} is {relation} {obj}",
                "false_caption": f"{obj} is {relation} {subject}",
                "relation_name": relation,
            }
        )
    attribute_cases = []
    pairs = [("white", "black", "plate", "cat"), ("red", "blue", "rocket", "sky")]
    for number, (first, second, noun_a, noun_b) in enumerate(pairs * 3):
        attribute_cases.append(
            {
                "image_id": str(number),
                "image_path": photos[number % len(photos)],
                "bbox_x": 0,
                "bbox_y": 5 * number,
                "bbox_w": 64,
                "bbox_h": 48 + number,
                "true_caption": f"the {first} {noun_a} and the {second} {noun_b}",
                "false_caption": f"the {second} {noun_a} and the {first} {noun_b}",
                "attributes": [first, second],
            }
        )
    (aro_dir / "visual_genome_relation.json").write_text(json.dumps(relation_cases))
    (aro_dir / "visual_genome_attribution.json").write_text(json.dumps(attribute_cases))


COCO_CAPTIONS = {
    "astronaut.png": ["an astronaut in a suit", "a woman astronaut smiles", "portrait of a flag"],
    "coffee.png": ["a cup of coffee on a saucer", "coffee in a red cup", "a spoon by a coffee cup"],
    "chelsea.png": ["a tabby cat looks left", "a cat with green eyes", "close up of a cat"],
    "rocket.png": ["a rocket on the launch pad", "a space shuttle launch", "a rocket under sky"],
}


def write_coco_fixture(coco_dir: Path) -> None:
    """Karpathy ``dataset_coco.json`` (test + one train image), images, paraphrased queries."""
    write_photos(coco_dir / "val2014")
    entries = [
        {
            "filepath": "val2014",
            "filename": filename,
            "split": "test",
            "cocoid": 100 + number,
            "sentences": [{"raw": caption, "tokens": caption.split()} for caption in captions],
        }
        for number, (filename, captions) in enumerate(COCO_CAPTIONS.items())
    ]
    entries.append({**entries[0], "split": "train", "cocoid": 999})
    (coco_dir / "dataset_coco.json").write_text(json.dumps({"images": entries}))
    queries = [
        {"caption": "a cup of coffee on a saucer", "paraphrase": "coffee served in a cup"},
        {"caption": "a tabby cat looks left", "paraphrase": "a striped cat glancing left"},
        {"caption": "a rocket on the launch pad", "paraphrase": "a rocket waiting to launch"},
    ]
    (coco_dir / "paraphrased_queries.jsonl").write_text(
        "\n".join(json.dumps(query) for query in queries) + "\n"
    )


class MiniLMTextEncoder:
    """Pretrained all-MiniLM-L6-v2 (shipped offline) for realistic text-side checks.

    Text only: a test that reaches ``encode_images`` is using it for the wrong benchmark.
    """

    def __init__(self) -> None:
        from sentence_transformers import SentenceTransformer

        from paraclip_pipeline.modeling.pretrained import minilm_model_dir

        self.model = SentenceTransformer(str(minilm_model_dir()), device="cpu")

    def encode_text(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        return self.model.encode(
            list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
        )

    def encode_images(self, images: Sequence[Image.Image], batch_size: int = 64) -> np.ndarray:
        raise TypeError("MiniLMTextEncoder has no image tower")
