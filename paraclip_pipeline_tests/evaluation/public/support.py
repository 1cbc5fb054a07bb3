"""Tiny benchmark files in the exact upstream formats, with their quirks, written by tests."""

from __future__ import annotations

import json
from pathlib import Path

BOM = "\ufeff"
CAPTIONS = [
    "a man riding a bike .",
    "a person on a bicycle in the street .",
    "a cyclist rides down the road .",
    "a man rides his bike on a city street .",
    "someone pedals a bike past shops .",
    "two dogs play in the snow .",
    "a pair of dogs running through snow .",
    "dogs chase each other on a snowy field .",
    "two puppies playing outside in winter .",
    "a couple of dogs in the snow .",
    "a plate of food with broccoli .",
    "a dish of vegetables and rice .",
    "broccoli and rice on a white plate .",
    "a healthy meal on a table .",
    "a white plate holds rice and greens .",
]
SCPP_ITEMS = [
    {
        "id": 0,
        "filename": "000000565045.jpg",
        "caption": "Blue bathroom with two white towels.",
        "caption2": "The bathroom is blue and has two white towels.",
        "negative_caption": "White bathroom with two blue towels.",
    },
    {
        "id": 1,
        "filename": "000000526706.jpg",
        "caption": "A dog sleeps on a red sofa.",
        "caption2": "A dog sleeps on a red sofa.",  # upstream quirk: caption2 == caption
        "negative_caption": "A cat sleeps on a red sofa.",
    },
    {
        "id": 2,
        "filename": "000000000139.jpg",
        "caption": "A man holds a large umbrella.",
        "caption2": "A large umbrella is held by a man.",
        "negative_caption": "A man holds a small umbrella.",
    },
]
PAWS_LINES = [
    '1\tThe cat sat on " the mat .\tOn the mat the cat sat .\t1',
    "2\tShe moved from Paris to Rome .\tShe moved from Rome to Paris .\t0",
    "3\tHe plays the piano well .\tHe is a good piano player .\t1",
    "4\tThe river flows north .\tThe river flows south .\t0",
]
MRPC_LINES = [
    "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String",
    '1\t702876\t702977\tAmrozi accused his brother, whom he called "the witness".\t'
    'Referring to him as "the witness", Amrozi accused his brother.',
    "0\t2108705\t2108831\tYucaipa owned Dominick's before 1998.\t"
    "Yucaipa bought Dominick's in 1995.",
    '1\t1330381\t1330521\tThey had "published an advertisement.\tThey published an advertisement.',
]
STSB_LINES = [
    "main-captions\tMSRvid\t2012test\t0000\t5.000\tA man is dancing.\tA man dances.",
    "main-captions\tMSRvid\t2012test\t0001\t0.500\tA woman is cooking.\tA cat sleeps.",
    "main-news\theadlines\t2015\t0002\t3.000\tStocks fall in Asia.\tAsian stocks drop."
    "\tsource-a\tsource-b",  # the 2 extra trailing columns some rows carry
    "main-forums\tanswers\t2016\t0003\t1.200\tThe sky is blue.\tThe grass is green.",
]


def write_public_fixture(root: Path) -> Path:
    """A data directory laid out like the shared data/eval, every format once."""
    (root / "f30k_captions_dev").mkdir(parents=True)
    # Flickr's file lacks the final newline.
    (root / "f30k_captions_dev" / "captions.txt").write_text("\n".join(CAPTIONS), encoding="utf-8")
    (root / "sugarcrepe_pp").mkdir()
    (root / "sugarcrepe_pp" / "swap_att.json").write_text(json.dumps(SCPP_ITEMS), encoding="utf-8")
    (root / "paws").mkdir()
    (root / "paws" / "test.tsv").write_text("\n".join(PAWS_LINES) + "\n", encoding="utf-8")
    (root / "mrpc").mkdir()
    (root / "mrpc" / "msr_paraphrase_test.txt").write_text(
        BOM + "\r\n".join(MRPC_LINES) + "\r\n", encoding="utf-8"
    )
    (root / "stsb").mkdir()
    (root / "stsb" / "sts-test.csv").write_text("\n".join(STSB_LINES) + "\n", encoding="utf-8")
    return root
