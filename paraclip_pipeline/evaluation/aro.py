"""ARO VG-Relation and VG-Attribution (Yuksekgonul et al., ICLR 2023).

Each test case is an image region (the box around the relation/attribute) with a true
caption and a word-order-swapped false one; it is correct when the true caption scores
strictly higher (the authors take argmax over [false, true], so a tie counts as wrong).
Macro-accuracy follows the authors' notebook: VG-Relation averages per-relation
accuracy without the relations listed below; VG-Attribution averages per
attribute-pair accuracy over pairs with at least 25 cases.

Layout as in the ARO release: ``visual_genome_relation.json``,
``visual_genome_attribution.json`` and an ``images/`` directory.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from paraclip_pipeline.evaluation.encoders import (
    TextImageEncoder,
    checked_embeddings,
    encode_unique_texts,
)
from paraclip_pipeline.evaluation.errors import BenchmarkDataError
from paraclip_pipeline.evaluation.reading import read_json_file
from paraclip_pipeline.evaluation.results import BenchmarkResult

BENCHMARK_NAME = "aro"
BENCHMARK_TITLE = "ARO (true vs swapped caption)"
RELATION_TASK = "VG-Relation"
ATTRIBUTION_TASK = "VG-Attribution"
TASK_FILES = {
    RELATION_TASK: "visual_genome_relation.json",
    ATTRIBUTION_TASK: "visual_genome_attribution.json",
}
IMAGES_DIRNAME = "images"
MIN_ATTRIBUTE_PAIR_COUNT = 25
BOX_FIELDS = ("bbox_x", "bbox_y", "bbox_w", "bbox_h")
# Images decoded per encode_images call.
IMAGE_CHUNK = 256

# Relations the ARO authors leave out of VG-Relation's macro-accuracy (swapping the two
# objects does not make these captions false), from their replication notebook.
EXCLUDED_RELATIONS = frozenset(
    """adjusting|attached to|between|bigger than|biting|boarding|brushing|chewing|cleaning|
climbing|close to|coming from|coming out of|contain|crossing|dragging|draped over|drinking|
drinking from|driving|driving down|driving on|eating from|eating in|enclosing|exiting|facing|
filled with|floating in|floating on|flying|flying above|flying in|flying over|flying through|
full of|going down|going into|going through|grazing in|growing in|growing on|guiding|
hanging from|hanging in|hanging off|hanging over|higher than|holding onto|hugging|in between|
jumping off|jumping on|jumping over|kept in|larger than|leading|leaning over|leaving|licking|
longer than|looking in|looking into|looking out|looking over|looking through|lying next to|
lying on top of|making|mixed with|mounted on|moving|on the back of|on the edge of|
on the front of|on the other side of|opening|painted on|parked at|parked beside|parked by|
parked in|parked in front of|parked near|parked next to|perched on|petting|piled on|playing|
playing in|playing on|playing with|pouring|reaching for|reading|reflected on|riding on|
running in|running on|running through|seen through|sitting behind|sitting beside|sitting by|
sitting in front of|sitting near|sitting next to|sitting under|skiing down|skiing on|
sleeping in|sleeping on|smiling at|sniffing|splashing|sprinkled on|stacked on|
standing against|standing around|standing behind|standing beside|standing in front of|
standing near|standing next to|staring at|stuck in|surrounding|swimming in|swinging|
talking to|topped with|touching|traveling down|traveling on|tying|typing on|underneath|
wading in|waiting for|walking across|walking by|walking down|walking next to|
walking through|working in|working on|worn on|wrapped around|wrapped in|by|of|near|next to|
with|beside|on the side of|around""".replace("\n", "").split("|")
)


@dataclass(frozen=True)
class AroCase:
    image_path: Path
    box: tuple[float, float, float, float]  # left, upper, right, lower (PIL crop order)
    true_caption: str
    false_caption: str
    group: str  # relation name, or "attribute1_attribute2"


def load_aro_cases(annotation_file: Path, images_dir: Path, task: str) -> list[AroCase]:
    """Test cases of one ARO JSON file; ``group`` is what macro-accuracy averages over."""
    records = read_json_file(annotation_file)
    if not isinstance(records, list):
        raise BenchmarkDataError(annotation_file, "expected a JSON list of test cases")
    cases = []
    for position, record in enumerate(records):
        if not isinstance(record, dict):
            raise BenchmarkDataError(annotation_file, "test case is not an object", row=position)
        needed = ("image_path", *BOX_FIELDS, "true_caption", "false_caption")
        needed += ("relation_name",) if task == RELATION_TASK else ("attributes",)
        for key in needed:
            if key not in record:
                raise BenchmarkDataError(
                    annotation_file, "test case lacks this field", row=position, column=key
                )
        try:
            x, y, width, height = (float(record[key]) for key in BOX_FIELDS)
        except (TypeError, ValueError):
            raise BenchmarkDataError(
                annotation_file, "box is not numeric", row=position, column="bbox_*"
            ) from None
        if task == RELATION_TASK:
            group = str(record["relation_name"])
        else:
            attributes = record["attributes"]
            if not isinstance(attributes, list) or len(attributes) < 2:
                raise BenchmarkDataError(
                    annotation_file, "needs two attributes", row=position, column="attributes"
                )
            group = f"{attributes[0]}_{attributes[1]}"
        cases.append(
            AroCase(
                image_path=images_dir / record["image_path"],
                box=(x, y, x + width, y + height),
                true_caption=str(record["true_caption"]),
                false_caption=str(record["false_caption"]),
                group=group,
            )
        )
    if not cases:
        raise BenchmarkDataError(annotation_file, "holds no test cases")
    return cases


def _cropped(case: AroCase, cache: dict[Path, Image.Image]) -> Image.Image:
    if case.image_path not in cache:
        try:
            with Image.open(case.image_path) as image:
                cache[case.image_path] = image.convert("RGB")
        except (FileNotFoundError, UnidentifiedImageError, OSError) as error:
            raise BenchmarkDataError(case.image_path, f"cannot read image ({error})") from None
    return cache[case.image_path].crop(case.box)


def case_correctness(
    encoder: TextImageEncoder, cases: Sequence[AroCase], batch_size: int, image_batch_size: int
) -> np.ndarray:
    """True where the image region scores the true caption above the false one."""
    captions = [caption for case in cases for caption in (case.true_caption, case.false_caption)]
    text_embeddings, row_of = encode_unique_texts(encoder, captions, batch_size)
    true_rows = text_embeddings[[row_of[case.true_caption] for case in cases]]
    false_rows = text_embeddings[[row_of[case.false_caption] for case in cases]]
    correct = np.empty(len(cases), dtype=bool)
    for start in range(0, len(cases), IMAGE_CHUNK):
        chunk = cases[start : start + IMAGE_CHUNK]
        # Many cases share one photo: decode each photo once per chunk.
        decoded: dict[Path, Image.Image] = {}
        crops = [_cropped(case, decoded) for case in chunk]
        image_rows = checked_embeddings(
            encoder.encode_images(crops, batch_size=image_batch_size), len(crops), "encode_images"
        )
        stop = start + len(chunk)
        true_scores = np.einsum("ij,ij->i", image_rows, true_rows[start:stop])
        false_scores = np.einsum("ij,ij->i", image_rows, false_rows[start:stop])
        correct[start:stop] = true_scores > false_scores
    return correct


def macro_accuracy(
    correct: np.ndarray,
    groups: Sequence[str],
    *,
    excluded: frozenset[str] = frozenset(),
    min_count: int = 1,
) -> tuple[float, int]:
    """Mean of per-group accuracies over kept groups, and how many groups were kept."""
    members: dict[str, list[bool]] = defaultdict(list)
    for is_correct, group in zip(correct.tolist(), groups, strict=True):
        members[group].append(is_correct)
    accuracies = [
        float(np.mean(values))
        for group, values in members.items()
        if group not in excluded and len(values) >= min_count
    ]
    return (float(np.mean(accuracies)) if accuracies else float("nan")), len(accuracies)


def evaluate_aro(
    encoder: TextImageEncoder,
    aro_dir: Path | None,
    batch_size: int = 256,
    image_batch_size: int = 64,
    min_attribute_pair_count: int = MIN_ATTRIBUTE_PAIR_COUNT,
) -> BenchmarkResult:
    missing = BenchmarkResult.for_missing_directory(BENCHMARK_NAME, BENCHMARK_TITLE, aro_dir, "ARO")
    if missing is not None:
        return missing
    result = BenchmarkResult(
        name=BENCHMARK_NAME,
        title=BENCHMARK_TITLE,
        status="ok",
        headline_stems={"macro accuracy": "aro_macro_accuracy"},
    )
    for task, filename in TASK_FILES.items():
        annotation_file = aro_dir / filename
        if not annotation_file.is_file():
            result.absent_tasks.append(task)
            continue
        cases = load_aro_cases(annotation_file, aro_dir / IMAGES_DIRNAME, task)
        correct = case_correctness(encoder, cases, batch_size, image_batch_size)
        groups = [case.group for case in cases]
        if task == RELATION_TASK:
            macro, kept = macro_accuracy(correct, groups, excluded=EXCLUDED_RELATIONS)
            kind = "relations"
        else:
            macro, kept = macro_accuracy(correct, groups, min_count=min_attribute_pair_count)
            kind = f"attribute pairs with >= {min_attribute_pair_count} cases"
        result.scores[task] = {"macro accuracy": macro, "accuracy": float(correct.mean())}
        result.counts[task] = len(cases)
        result.notes.append(f"{task}: macro-accuracy over {kept} {kind}")
    if not result.scores:
        result.status = "absent"
        result.notes.append(f"no ARO annotation files found under {aro_dir}")
    result.set_averages(["macro accuracy", "accuracy"])
    return result
