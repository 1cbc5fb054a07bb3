"""Column names and Arrow schemas of the tables that flow between assets.

Every table keeps ``caption_id`` so DuckDB can join any output back to its source
row, and a checkpoint manifest can name the exact rows it was trained on.
"""

from __future__ import annotations

import pyarrow as pa

CAPTION_ID = "caption_id"
SHARD = "shard"
SOURCE_ROW = "source_row"
SAMPLE_ID = "sample_id"
TEXT = "text"
URL = "url"
NSFW = "nsfw"
IMAGE_PATH = "image_path"
# The image as the shard names it (file name, relative path or URI), before it is resolved
# and checked: kept even when the file is absent, so captions of one image stay grouped
# (the co_captions paraphrase backend) where image_path is null (no local images).
IMAGE_REF = "image_ref"
IMAGE_EMBEDDING = "image_embedding"
IMAGE_EMBEDDING_MODEL = "image_embedding_model"
INPUT_ISSUE = "input_issue"  # null when the caption is usable, else why not (kept, never dropped)

PARAPHRASE_1 = "paraphrase_1"
STATUS_1 = "status_1"
PARAPHRASE_2 = "paraphrase_2"
STATUS_2 = "status_2"

SPLIT = "split"  # one of SPLITS, a deterministic function of the normalised caption text
REJECTED_BY = "rejected_by"  # name of the first filter rule that rejected a row
HAS_IMAGE = "has_image"

# Values of SPLIT: train is trained on, validation chooses settings, test is only reported.
TRAIN = "train"
VALIDATION = "validation"
TEST = "test"
SPLITS = (TRAIN, VALIDATION, TEST)

# Paraphrase outcome per row; a row always ends in exactly one of these.
PARAPHRASE_STATUSES = ("ok", "refused", "empty", "echo", "error", "skipped")

RAW_CAPTIONS_SCHEMA = pa.schema(
    [
        pa.field(CAPTION_ID, pa.string(), nullable=False),
        pa.field(SHARD, pa.string(), nullable=False),
        pa.field(SOURCE_ROW, pa.int64(), nullable=False),
        pa.field(SAMPLE_ID, pa.string()),
        pa.field(TEXT, pa.string(), nullable=False),
        pa.field(URL, pa.string()),
        pa.field(NSFW, pa.string()),
        pa.field(IMAGE_PATH, pa.string()),
        pa.field(IMAGE_REF, pa.string()),
        pa.field(IMAGE_EMBEDDING, pa.list_(pa.float32())),
        pa.field(IMAGE_EMBEDDING_MODEL, pa.string()),
        pa.field(INPUT_ISSUE, pa.string()),
    ]
)

# What stage 1 reads of raw_captions (the asset selects them, the engine requires them).
STAGE1_INPUT_COLUMNS = (CAPTION_ID, SHARD, TEXT, INPUT_ISSUE)

STAGE1_SCHEMA = pa.schema(
    [
        pa.field(CAPTION_ID, pa.string(), nullable=False),
        pa.field(SHARD, pa.string(), nullable=False),
        pa.field(TEXT, pa.string(), nullable=False),
        pa.field(PARAPHRASE_1, pa.string()),
        pa.field(STATUS_1, pa.string(), nullable=False),
    ]
)

STAGE2_SCHEMA = pa.schema(
    [
        *STAGE1_SCHEMA,
        pa.field(PARAPHRASE_2, pa.string()),
        pa.field(STATUS_2, pa.string(), nullable=False),
    ]
)

FILTERED_PAIRS_SCHEMA = pa.schema(
    [
        pa.field(CAPTION_ID, pa.string(), nullable=False),
        pa.field(SHARD, pa.string(), nullable=False),
        pa.field(TEXT, pa.string(), nullable=False),
        pa.field(PARAPHRASE_1, pa.string(), nullable=False),
        pa.field(PARAPHRASE_2, pa.string(), nullable=False),
        pa.field(SPLIT, pa.string(), nullable=False),
    ]
)

IMAGE_EMBEDDINGS_SCHEMA = pa.schema(
    [
        pa.field(CAPTION_ID, pa.string(), nullable=False),
        pa.field(HAS_IMAGE, pa.bool_(), nullable=False),
        pa.field(IMAGE_EMBEDDING, pa.list_(pa.float32())),
        pa.field(IMAGE_EMBEDDING_MODEL, pa.string()),
    ]
)
