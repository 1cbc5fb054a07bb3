from __future__ import annotations

import pytest

from paraclip_pipeline.paraphrase.alt_text import normalise_alt_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("image (3).png", ""),
        ("untitled.jpg", ""),
        ("IMG_2041.jpg golden retriever puppy | free shipping", "golden retriever puppy"),
        ("red-barn_sunset (2).jpeg", "red barn sunset"),
        ("Tom &amp; Jerry mug", "Tom & Jerry mug"),
        ("a photo of a dog on a beach", "a photo of a dog on a beach"),
    ],
)
def test_alt_text_noise_removed(text: str, expected: str) -> None:
    assert normalise_alt_text(text) == expected
