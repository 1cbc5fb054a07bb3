"""STS benchmarks: loaders for the upstream file layouts and Spearman of cosine vs gold.

Seven tasks, as in SentEval/SimCSE: STS12-16 (subsets pooled per year, SimCSE's "all"
setting), STS-B test and SICK-R test. Three layouts are read:

- SemEval as collected by brmson/dataset-sts: ``semeval-sts/YEAR/SUBSET.test.tsv`` with
  ``gold<TAB>s1<TAB>s2`` lines; empty gold (unscored pairs in 2015/2016) is skipped.
- SentEval: ``STS{yy}-en-test/STS.input.SUBSET.txt`` + ``STS.gs.SUBSET.txt``, aligned by
  line; lines with empty gold are dropped.
- STS-B ``sts-test.csv`` (tab-separated, score column 4, sentences 5 and 6, no quoting)
  and SICK ``SICK_test_annotated.txt`` (tab-separated with a header).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paraclip_pipeline.evaluation.encoders import TextImageEncoder, encode_unique_texts
from paraclip_pipeline.evaluation.errors import BenchmarkDataError
from paraclip_pipeline.evaluation.metrics import load_metric
from paraclip_pipeline.evaluation.results import BenchmarkResult

BENCHMARK_NAME = "sts"
BENCHMARK_TITLE = "STS (Spearman of cosine vs gold)"
YEAR_TASKS = {"STS12": 2012, "STS13": 2013, "STS14": 2014, "STS15": 2015, "STS16": 2016}
STSB_TASK = "STS-B"
SICK_TASK = "SICK-R"
TASKS = (*YEAR_TASKS, STSB_TASK, SICK_TASK)

# SentEval's subset names per year; the brmson copy of STS12 lacks MSRvid and drops the
# "surprise." prefix, so its names are mapped onto these.
SENTEVAL_SUBSETS = {
    "STS12": ("MSRpar", "MSRvid", "SMTeuroparl", "surprise.OnWN", "surprise.SMTnews"),
    "STS13": ("FNWN", "headlines", "OnWN"),
    "STS14": ("deft-forum", "deft-news", "headlines", "images", "OnWN", "tweet-news"),
    "STS15": ("answers-forums", "answers-students", "belief", "headlines", "images"),
    "STS16": ("answer-answer", "headlines", "plagiarism", "postediting", "question-question"),
}
SEMEVAL_SUBSET_ALIASES = {"STS12": {"OnWN": "surprise.OnWN", "SMTnews": "surprise.SMTnews"}}

STSB_CANDIDATES = ("sts-test.csv", "stsbenchmark/sts-test.csv", "STSBenchmark/sts-test.csv")
SICK_CANDIDATES = (
    "SICK_test_annotated.txt",
    "sick2014/SICK_test_annotated.txt",
    "SICK/SICK_test_annotated.txt",
)
SICK_COLUMNS = ("sentence_A", "sentence_B", "relatedness_score")
STSB_SCORE_COLUMN, STSB_FIRST_COLUMN, STSB_SECOND_COLUMN = 4, 5, 6


@dataclass(frozen=True)
class StsPairs:
    """Scored sentence pairs of one subset, with the file they came from."""

    subset: str
    source: Path
    first: list[str]
    second: list[str]
    gold: np.ndarray

    def __len__(self) -> int:
        return len(self.gold)


def _parse_gold(text: str, path: Path, line: int, column: str | int) -> float:
    try:
        return float(text)
    except ValueError:
        raise BenchmarkDataError(
            path, f"gold score {text!r} is not a number", line=line, column=column
        ) from None


def tsv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(1-based line number, fields) of every non-blank line; quotes are plain characters."""
    with open(path, encoding="utf-8", newline="") as handle:
        for number, fields in enumerate(
            csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE), start=1
        ):
            if fields and any(field.strip() for field in fields):
                yield number, fields


def _pairs(subset: str, source: Path, rows: list[tuple[str, str, float]]) -> StsPairs:
    if not rows:
        raise BenchmarkDataError(source, "no scored sentence pairs")
    first, second, gold = zip(*rows, strict=True)
    return StsPairs(subset, source, list(first), list(second), np.asarray(gold, dtype=np.float64))


def load_semeval_tsv(path: Path, subset: str | None = None) -> StsPairs:
    """``gold<TAB>s1<TAB>s2`` lines; lines with an empty gold field were never scored."""
    rows = []
    for line, fields in tsv_rows(path):
        if len(fields) != 3:
            raise BenchmarkDataError(
                path,
                f"expected 3 tab-separated fields (gold, s1, s2), got {len(fields)}",
                line=line,
            )
        if not fields[0].strip():
            continue
        rows.append((fields[1], fields[2], _parse_gold(fields[0], path, line, "gold")))
    return _pairs(subset or path.name.removesuffix(".test.tsv"), path, rows)


def load_senteval_subset(input_path: Path, gold_path: Path) -> StsPairs:
    """SentEval's two aligned files; a pair whose gold line is empty is dropped."""
    with open(input_path, encoding="utf-8") as handle:
        inputs = handle.read().splitlines()
    with open(gold_path, encoding="utf-8") as handle:
        golds = handle.read().splitlines()
    if len(inputs) != len(golds):
        raise BenchmarkDataError(
            gold_path, f"has {len(golds)} lines but {input_path.name} has {len(inputs)}"
        )
    rows = []
    for line, (pair, gold) in enumerate(zip(inputs, golds, strict=True), start=1):
        if not gold.strip():
            continue
        fields = pair.split("\t")
        if len(fields) != 2:
            raise BenchmarkDataError(
                input_path, f"expected 2 tab-separated sentences, got {len(fields)}", line=line
            )
        rows.append((fields[0], fields[1], _parse_gold(gold, gold_path, line, 0)))
    subset = input_path.name.removeprefix("STS.input.").removesuffix(".txt")
    return _pairs(subset, input_path, rows)


def load_stsb_csv(path: Path) -> StsPairs:
    """STS-B: genre, file, year, id, score, s1, s2 (+ optional source columns), no quoting."""
    rows = []
    for line, fields in tsv_rows(path):
        if len(fields) <= STSB_SECOND_COLUMN:
            raise BenchmarkDataError(
                path, f"expected at least 7 tab-separated fields, got {len(fields)}", line=line
            )
        score = _parse_gold(fields[STSB_SCORE_COLUMN], path, line, STSB_SCORE_COLUMN)
        rows.append((fields[STSB_FIRST_COLUMN], fields[STSB_SECOND_COLUMN], score))
    return _pairs("test", path, rows)


def load_sick(path: Path) -> StsPairs:
    """SICK with its header; SICK-R uses ``relatedness_score``."""
    rows_iter = tsv_rows(path)
    header_line = next(rows_iter, None)
    if header_line is None:
        raise BenchmarkDataError(path, "file is empty")
    header = [name.strip() for name in header_line[1]]
    missing = [name for name in SICK_COLUMNS if name not in header]
    if missing:
        raise BenchmarkDataError(path, f"header lacks column(s) {missing}", line=header_line[0])
    first_at, second_at, score_at = (header.index(name) for name in SICK_COLUMNS)
    rows = []
    for line, fields in rows_iter:
        if len(fields) != len(header):
            raise BenchmarkDataError(
                path, f"expected {len(header)} fields like the header, got {len(fields)}", line=line
            )
        score = _parse_gold(fields[score_at], path, line, "relatedness_score")
        rows.append((fields[first_at], fields[second_at], score))
    return _pairs("test", path, rows)


def _first_existing(root: Path, candidates: tuple[str, ...]) -> Path | None:
    return next((root / name for name in candidates if (root / name).is_file()), None)


def _year_subsets(sts_dir: Path, task: str) -> list[StsPairs]:
    """Subsets of one STS year from the SentEval layout if present, else the SemEval one."""
    year = YEAR_TASKS[task]
    for senteval_dir in (sts_dir / f"{task}-en-test", sts_dir / "STS" / f"{task}-en-test"):
        inputs = sorted(senteval_dir.glob("STS.input.*.txt"))
        if inputs:
            pairs = []
            for input_path in inputs:
                subset = input_path.name.removeprefix("STS.input.").removesuffix(".txt")
                gold_path = senteval_dir / f"STS.gs.{subset}.txt"
                if not gold_path.is_file():
                    raise BenchmarkDataError(input_path, f"has no gold file {gold_path.name}")
                pairs.append(load_senteval_subset(input_path, gold_path))
            return pairs
    for semeval_dir in (sts_dir / "semeval-sts" / str(year), sts_dir / str(year)):
        tsvs = sorted(semeval_dir.glob("*.test.tsv"))
        if tsvs:
            aliases = SEMEVAL_SUBSET_ALIASES.get(task, {})
            pairs = []
            for path in tsvs:
                name = path.name.removesuffix(".test.tsv")
                pairs.append(load_semeval_tsv(path, aliases.get(name, name)))
            return pairs
    return []


def load_sts_tasks(sts_dir: Path) -> dict[str, list[StsPairs]]:
    """Every STS task found under ``sts_dir``; tasks without files are left out."""
    if not sts_dir.is_dir():
        raise BenchmarkDataError(sts_dir, "STS directory does not exist")
    tasks: dict[str, list[StsPairs]] = {}
    for task in YEAR_TASKS:
        subsets = _year_subsets(sts_dir, task)
        if subsets:
            tasks[task] = subsets
    stsb = _first_existing(sts_dir, STSB_CANDIDATES)
    if stsb is not None:
        tasks[STSB_TASK] = [load_stsb_csv(stsb)]
    sick = _first_existing(sts_dir, SICK_CANDIDATES)
    if sick is not None:
        tasks[SICK_TASK] = [load_sick(sick)]
    return tasks


def cosine_scores(encoder: TextImageEncoder, pairs: StsPairs, batch_size: int) -> np.ndarray:
    """Cosine similarity of each pair (embeddings are unit rows, so a row-wise dot)."""
    embeddings, row_of = encode_unique_texts(encoder, pairs.first + pairs.second, batch_size)
    first = embeddings[[row_of[text] for text in pairs.first]]
    second = embeddings[[row_of[text] for text in pairs.second]]
    return np.einsum("ij,ij->i", first, second)


def evaluate_sts(
    encoder: TextImageEncoder, sts_dir: Path | None, batch_size: int = 256
) -> BenchmarkResult:
    """Spearman per task (subsets pooled per STS year) and the average over tasks present."""
    missing = BenchmarkResult.for_missing_directory(BENCHMARK_NAME, BENCHMARK_TITLE, sts_dir, "STS")
    if missing is not None:
        return missing
    tasks = load_sts_tasks(sts_dir)
    result = BenchmarkResult(
        name=BENCHMARK_NAME,
        title=BENCHMARK_TITLE,
        status="ok" if tasks else "absent",
        absent_tasks=[task for task in TASKS if task not in tasks],
        headline_stems={"spearman": "sts_avg"},
    )
    spearman = load_metric("spearman")
    for task, subsets in tasks.items():
        predictions = np.concatenate(
            [cosine_scores(encoder, pairs, batch_size) for pairs in subsets]
        )
        gold = np.concatenate([pairs.gold for pairs in subsets])
        scores = {
            "spearman": spearman.compute(predictions=predictions, references=gold)["spearman"]
        }
        if len(subsets) > 1:
            # Per-subset values explain the pooled one; SentEval reports them too.
            start = 0
            for pairs in subsets:
                stop = start + len(pairs)
                subset_value = spearman.compute(
                    predictions=predictions[start:stop], references=gold[start:stop]
                )["spearman"]
                scores[f"spearman[{pairs.subset}]"] = subset_value
                start = stop
        result.scores[task] = scores
        result.counts[task] = len(gold)
        expected = SENTEVAL_SUBSETS.get(task, ())
        missing = [name for name in expected if name not in {pairs.subset for pairs in subsets}]
        if missing:
            result.notes.append(f"{task}: subset(s) {', '.join(missing)} not found; pooled without")
    if not tasks:
        result.notes.append(f"no STS task files found under {sts_dir}")
    result.set_averages(["spearman"])
    return result
