"""Regenerate the bundled demo data: three caption shards and eight CC0/public-domain photos.

Run from the repository root: ``.venv/bin/python data/make_demo_shards.py``. The output is
deterministic (fixed seed), so rerunning it rewrites identical shards; images are re-encoded
by Pillow, whose JPEG bytes only change with its libjpeg version.

The captions are written for this project. They imitate web alt-text: mostly plain
descriptions of everyday scenes, mixed with the noise a scraped caption set really has
(shop boilerplate, camera file names, emoji, other languages, duplicates, keyword lists,
stock-photo phrasing, empty and overlong captions).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from itertools import cycle
from pathlib import Path

import numpy as np
import pyarrow as pa
import skimage.data
from PIL import Image
from skimage.transform import resize

from paraclip_pipeline.storage import atomic_path, write_parquet_atomic, write_text_atomic

DATA_DIR = Path(__file__).resolve().parent
SHARDS_DIR = DATA_DIR / "shards"
IMAGES_DIR = DATA_DIR / "images"
MAX_IMAGE_SIDE = 256
SEED = 2041

# skimage.data loader -> (file name, captions describing the photo). Licences: images/LICENSES.md.
IMAGE_CAPTIONS: dict[str, tuple[str, list[str]]] = {
    "astronaut": (
        "astronaut.jpg",
        [
            "Official portrait of a smiling astronaut in an orange flight suit beside a US flag",
            "NASA astronaut posing with her helmet next to a space shuttle model",
        ],
    ),
    "coffee": (
        "coffee.jpg",
        [
            "A cup of espresso on a red saucer with a spoon on a wooden table",
            "close up of an espresso cup on a wooden bar counter",
        ],
    ),
    "chelsea": (
        "chelsea.jpg",
        [
            "Close-up of a tabby cat looking to the side",
            "orange and grey tabby cat sitting indoors",
        ],
    ),
    "rocket": (
        "rocket.jpg",
        [
            "A white rocket standing on the launch pad at dusk between lightning towers",
            "SpaceX Falcon 9 rocket ready for launch, lit by floodlights",
        ],
    ),
    "camera": (
        "camera.jpg",
        ["Black and white photo of a man filming with a camera on a tripod in a field"],
    ),
    "clock": ("clock.jpg", ["Motion blurred photo of a round wall clock on a grey wall"]),
    "hubble_deep_field": (
        "hubble_deep_field.jpg",
        ["Hubble deep field image showing hundreds of distant galaxies in space"],
    ),
    "horse": ("horse.jpg", ["Black silhouette of a standing horse on a white background"]),
}

SUBJECTS = [
    "a golden retriever",
    "a small child",
    "two teenagers",
    "an elderly man",
    "a woman in a red coat",
    "a black cat",
    "a cyclist",
    "a group of friends",
    "a street musician",
    "a young girl with a backpack",
    "a fisherman",
    "a brown horse",
    "a couple holding hands",
    "a toddler in rain boots",
    "a man with a grey beard",
    "a jogger",
    "a border collie",
    "a mother and her son",
    "a delivery rider",
    "an old woman with a shopping bag",
]
ACTIONS = [
    "walking",
    "sitting on a bench",
    "waiting",
    "playing",
    "resting in the shade",
    "standing",
    "taking a break",
]
# (preposition, place): each place keeps the preposition it reads naturally with.
PLACES = [
    ("in", "a city park"),
    ("at", "a crowded market"),
    ("in", "an empty parking lot"),
    ("in", "a sunny meadow"),
    ("on", "a narrow old street"),
    ("in", "a snowy field"),
    ("at", "a busy train station"),
    ("in", "a quiet village square"),
    ("in", "a botanical garden"),
    ("on", "a sandy beach"),
]
TIMES = ["", "", "", " at sunset", " on a foggy morning", " in autumn", " after the rain"]

OBJECT_SCENES = [
    "a red bicycle leaning against a brick wall",
    "fresh bread on a wooden cutting board",
    "a bowl of ramen with a soft boiled egg",
    "a stack of old books on a windowsill",
    "an empty swing in a playground",
    "a yellow taxi stuck in evening traffic",
    "a lighthouse on a rocky coast under a cloudy sky",
    "a laptop and a cup of tea on a kitchen table",
    "rows of vegetables at a farmers market",
    "a sailboat on a calm lake at dawn",
    "snow covered pine trees along a mountain road",
    "a wooden cabin in the forest",
    "a plate of pancakes with blueberries and syrup",
    "a vintage car parked outside a diner",
    "colorful umbrellas hanging over a shopping street",
    "a potted plant next to a sunny window",
    "a bridge over a river in the city at night",
    "children's drawings pinned to a fridge",
    "a tent pitched beside a mountain lake",
    "a slice of pizza with melted cheese",
    "an old tram passing through a square",
    "a field of sunflowers under a blue sky",
    "a cat sleeping on a pile of laundry",
    "a dog waiting at the front door",
    "a kitchen sink full of dirty dishes",
    "two cups of coffee on a cafe table",
    "a hiker looking at a valley from a cliff",
    "a child blowing out birthday candles",
    "a busy harbour with fishing boats",
    "a man repairing a bike in his garage",
    "a bride and groom dancing at their wedding",
    "a woman reading a book on a train",
    "a basket of apples on a wooden table",
    "a waterfall in a green forest",
    "a city skyline reflected in the water",
    "a dog catching a frisbee in the air",
    "a row of colorful houses along a canal",
    "a grandmother knitting on a sofa",
    "a man carrying a surfboard to the ocean",
    "a cow grazing in a green pasture",
    "a birthday cake with strawberries on top",
    "a teenager skateboarding down a ramp",
    "a bus stop in the rain",
    "an airplane taking off over a runway",
    "a bowl of fruit salad on a picnic blanket",
    "a man walking his dog on a snowy path",
    "a classroom with empty desks and a whiteboard",
    "a farmer driving a tractor through a field",
    "a girl feeding ducks at a pond",
    "a street food stall selling grilled corn",
]

SHOP_PRODUCTS = [
    "Men's Waterproof Hiking Boots Brown Size 42",
    "Ceramic Coffee Mug 350ml Matte Black",
    "Women's Linen Summer Dress Floral Print",
    "Stainless Steel Water Bottle 750 ml",
    "Kids Wooden Toy Train Set 24 pcs",
    "LED Desk Lamp with USB Charging Port",
    "Organic Cotton Bath Towel Set Grey",
    "Leather Crossbody Bag Tan",
]
SHOP_BOILERPLATE = [
    "{product} | Buy now | Free shipping",
    "{product} - Free Shipping on orders over $50 – HomeGoods Outlet",
    "{product} ★★★★★ Best Price! Add to cart",
    "Buy {product} online | In stock | 30 day returns",
]
FILE_NAMES = [
    "IMG_2041.JPG",
    "DSC00213",
    "IMG_20190713_184512.jpg",
    "P1010034.JPG",
    "image (3).png",
    "photo_2021-05-04_10-22-31.jpg",
    "DSCN0457.JPG",
    "Screenshot 2020-11-02 at 14.03.55",
]
EMOJI_CAPTIONS = [
    "Sunday brunch vibes ☕🥐✨",
    "my boy 🐶❤️",
    "beach day 🌊☀️ #summer #holiday",
    "🎂🎉 happy 30th birthday Anna!",
    "👨‍👩‍👧 family walk in the woods",
    "first snow of the year ❄️⛄",
    "new plant baby 🌱🪴",
]
NON_ENGLISH = [
    "Ein Hund spielt im Schnee mit einem roten Ball",
    "Frisches Brot vom Bäcker um die Ecke",
    "Una mujer leyendo un libro en el parque",
    "Paella de mariscos en una sartén grande",
    "Un chat noir dort sur le canapé",
    "Vue sur la tour Eiffel au coucher du soleil",
    "公園で遊ぶ子供たち",
    "東京の夜景と高層ビル",
]
SEO_KEYWORDS = [
    "wedding dress, bridal gown, lace wedding dress, cheap wedding dresses 2019, "
    "beach wedding dress, boho wedding dress, plus size",
    "living room ideas, modern living room, grey sofa, scandinavian interior, home decor, "
    "cozy living room, minimalist",
    "dog bed large dogs orthopedic dog bed washable pet bed memory foam dog bed xxl",
    "summer outfit ideas women casual 2021 trendy cute outfits street style",
]
STOCK_PHOTO = [
    "Happy young businesswoman smiling at camera in modern office, stock photo",
    "Close-up of hands typing on laptop keyboard, top view, copy space",
    "Portrait of confident mature man with arms crossed isolated on white background",
    "Diverse team of colleagues brainstorming around a table in a bright office",
    "Healthy food concept: fresh vegetables on rustic wooden table, flat lay",
    "Senior couple walking on the beach at sunset, retirement lifestyle",
]
SHORT = ["dog", "cat", "sunset", "untitled", "image", "flowers"]
LONG_SEO = (
    "Buy the best cheap modern sofa online, sofa sale, corner sofa, grey sofa, velvet sofa, "
    "leather sofa, sofa bed, 3 seater sofa, 2 seater sofa, sofas for small spaces, luxury "
    "sofa, living room furniture, furniture store near me, free delivery, free returns, "
    "interest free credit, price match guarantee, "
)
LONG_DESCRIPTION = (
    "View of the old harbour in the early morning light, with small wooden fishing boats "
    "tied to the stone pier, stacks of orange nets and plastic crates drying in the sun, "
    "seagulls circling above the water, a row of pastel coloured houses with green shutters "
    "on the hill behind the harbour, and a few fishermen in rubber boots unloading the "
    "night's catch while a cafe owner sets out chairs for the first customers of the day"
)
# Alt text scraped from a product page dump: far over the reader's 2000 character limit.
OVERLONG = (LONG_SEO * 12).strip()


def everyday_captions(rng: random.Random, count: int) -> list[str]:
    """Plain 3-15 word English descriptions: templated people/animal scenes plus object scenes."""
    templated = {
        f"{subject} {action} {preposition} {place}{time}"
        for subject in SUBJECTS
        for action in ACTIONS
        for preposition, place in PLACES
        for time in TIMES
    }
    pool = sorted(templated)
    rng.shuffle(pool)
    chosen = pool[: count - len(OBJECT_SCENES)] + list(OBJECT_SCENES)
    rng.shuffle(chosen)
    # Web alt text is inconsistently capitalised; about half start with a capital letter.
    return [
        caption[0].upper() + caption[1:] if rng.random() < 0.5 else caption for caption in chosen
    ]


def noisy_captions(rng: random.Random) -> list[str]:
    """One instance of every kind of noise a scraped caption set has."""
    shop = [
        template.format(product=product)
        for product, template in zip(SHOP_PRODUCTS, cycle(SHOP_BOILERPLATE), strict=False)
    ]
    return [
        *shop,
        *FILE_NAMES,
        *EMOJI_CAPTIONS,
        *NON_ENGLISH,
        *SEO_KEYWORDS,
        *STOCK_PHOTO,
        *SHORT,
        LONG_SEO.strip(),
        LONG_DESCRIPTION,
        OVERLONG,
        "Tom &amp; Jerry mug",
        "  A man fishing from a pier\t ",
        "",
        "   ",
        "Two dogs playing tug of war\nwith a rope toy",
        rng.choice(["dog", "cat"]),
    ]


def split_evenly(items: list[str], rng: random.Random, parts: int) -> list[list[str]]:
    shuffled = list(items)
    rng.shuffle(shuffled)
    return [shuffled[index::parts] for index in range(parts)]


def save_images() -> dict[str, tuple[int, int]]:
    """Write each photo as a JPEG of at most MAX_IMAGE_SIDE px; return name -> (height, width)."""
    IMAGES_DIR.mkdir(parents=True, exist_ok=True)
    sizes: dict[str, tuple[int, int]] = {}
    for loader_name, (file_name, _) in IMAGE_CAPTIONS.items():
        loader: Callable[[], np.ndarray] = getattr(skimage.data, loader_name)
        pixels = loader()
        scale = MAX_IMAGE_SIDE / max(pixels.shape[:2])
        shape = (round(pixels.shape[0] * scale), round(pixels.shape[1] * scale))
        resized = resize(pixels.astype(np.float64), shape, anti_aliasing=True, preserve_range=True)
        if pixels.dtype == bool:  # the horse silhouette is a mask that is True on the background
            resized = resized * 255.0
        image = Image.fromarray(np.clip(resized, 0, 255).astype(np.uint8))
        with atomic_path(IMAGES_DIR / file_name) as tmp:
            image.convert("RGB").save(tmp, format="JPEG", quality=85)
        sizes[file_name] = shape
    return sizes


def write_laion_parquet(
    captions: list[str], image_sizes: dict[str, tuple[int, int]], rng: random.Random
) -> None:
    rows: list[dict[str, object]] = []
    for file_name, image_captions in IMAGE_CAPTIONS.values():
        height, width = image_sizes[file_name]
        rows.extend(
            {
                "TEXT": caption,
                "URL": f"https://images.example.org/cc0/{file_name}",
                "HEIGHT": height,
                "WIDTH": width,
                "LICENSE": "CC0",
                "image_path": file_name,  # relative to the image root, data/images
            }
            for caption in image_captions
        )
    for index, caption in enumerate(captions):
        rows.append(
            {
                "TEXT": caption,
                "URL": f"https://cdn.example.com/media/{rng.getrandbits(40):010x}/{index}.jpg",
                "HEIGHT": rng.choice([240, 360, 480, 600, 768, 1024]),
                "WIDTH": rng.choice([320, 480, 640, 800, 1024, 1280]),
                "LICENSE": rng.choice(["?", "?", "?", "CC BY 2.0", "CC BY-SA 4.0"]),
                "image_path": None,
            }
        )
    rng.shuffle(rows)
    sample_ids = [1_284_937 + 17 * index for index in range(len(rows))]
    sample_ids[-1] = sample_ids[-2]  # LAION metadata does contain repeated SAMPLE_IDs
    table = pa.table(
        {
            "SAMPLE_ID": pa.array(sample_ids, pa.int64()),
            "URL": [row["URL"] for row in rows],
            "TEXT": [row["TEXT"] for row in rows],
            "HEIGHT": pa.array([row["HEIGHT"] for row in rows], pa.int32()),
            "WIDTH": pa.array([row["WIDTH"] for row in rows], pa.int32()),
            "LICENSE": [row["LICENSE"] for row in rows],
            "NSFW": [rng.choice(["UNLIKELY"] * 9 + ["UNSURE"]) for _ in rows],
            "similarity": [round(rng.uniform(0.28, 0.42), 6) for _ in rows],
            "image_path": pa.array([row["image_path"] for row in rows], pa.string()),
        }
    )
    write_parquet_atomic(table, SHARDS_DIR / "laion_demo_000.parquet")


def write_jsonl(captions: list[str], rng: random.Random) -> None:
    lines: list[str] = []
    for index, caption in enumerate(captions):
        record: dict[str, object] = {}
        if rng.random() < 0.9:  # some scrapers lose the id
            record["id"] = f"web-001-{index:05d}"
        # Two scrapers fed this file: one wrote "caption", the other "text".
        record["caption" if rng.random() < 0.7 else "text"] = caption
        record["url"] = f"https://blog.example.net/uploads/{2015 + index % 9}/{index:04d}.jpg"
        if rng.random() < 0.5:
            record["nsfw"] = "UNLIKELY"
        lines.append(json.dumps(record, ensure_ascii=False))
    write_text_atomic("\n".join(lines) + "\n", SHARDS_DIR / "web_alt_001.jsonl")


def write_two_file(captions: list[str]) -> None:
    """One caption per line in the authors' format: line breaks inside a caption become spaces."""
    directory = SHARDS_DIR / "authors_format_002"
    one_line = [" ".join(caption.splitlines()) for caption in captions]
    image_ids = [f"img_002_{index:06d}" for index in range(len(captions))]
    write_text_atomic("\n".join(one_line) + "\n", directory / "captions.txt")
    write_text_atomic("\n".join(image_ids) + "\n", directory / "img_ids.txt")


def main() -> None:
    rng = random.Random(SEED)
    everyday = everyday_captions(rng, 285)
    noisy = noisy_captions(rng)
    # Exact duplicates, within a shard and across shards, as scraped data always has.
    duplicates = [everyday[0], everyday[1], everyday[1], noisy[0], "dog"]
    laion, jsonl, two_file = split_evenly(everyday + noisy + duplicates, rng, 3)
    image_sizes = save_images()
    write_laion_parquet(laion, image_sizes, rng)
    write_jsonl(jsonl, rng)
    write_two_file(two_file)


if __name__ == "__main__":
    main()
