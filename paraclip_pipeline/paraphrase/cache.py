"""Content-addressed, crash-safe cache of raw backend answers.

Layout: ``<cache_dir>/<namespace>/identity.json`` plus ``chunk-<digest>.parquet``
files. The namespace is a hash of everything but the input text (backend, model,
template, sampling parameters), so answers from different settings never mix; the key
of one answer is a hash of the namespace and the input text. Each committed chunk is
one Parquet file written atomically (temp file + rename), so a kill loses at most the
chunk in flight, concurrent shard runs in separate processes never contend for a lock
(as a single DuckDB file would), and DuckDB can still query the cache with
``read_parquet('<namespace>/*.parquet')``. Each row keeps the raw answer next to its
cleaned paraphrase and status, stamped with the hygiene version that produced them;
the engine re-cleans rows from an older version, so a hygiene fix needs no new calls.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from paraclip_pipeline.paraphrase.errors import CacheCorruptError
from paraclip_pipeline.storage import write_parquet_atomic, write_text_atomic

KEY = "key"
INPUT_TEXT = "input_text"
ANSWER = "answer"
PARAPHRASE = "paraphrase"
STATUS = "status"
HYGIENE_VERSION = "hygiene_version"
PROMPT_TOKENS = "prompt_tokens"
COMPLETION_TOKENS = "completion_tokens"

CACHE_SCHEMA = pa.schema(
    [
        pa.field(KEY, pa.string(), nullable=False),
        pa.field(INPUT_TEXT, pa.string(), nullable=False),
        pa.field(ANSWER, pa.string(), nullable=False),
        pa.field(PARAPHRASE, pa.string()),
        pa.field(STATUS, pa.string(), nullable=False),
        pa.field(HYGIENE_VERSION, pa.string(), nullable=False),
        pa.field(PROMPT_TOKENS, pa.int64(), nullable=False),
        pa.field(COMPLETION_TOKENS, pa.int64(), nullable=False),
    ]
)
IDENTITY_FILE = "identity.json"
CHUNK_GLOB = "chunk-*.parquet"


@dataclass(frozen=True)
class CacheHit:
    """What a rerun needs of a cached answer (the raw texts stay on disk unless needed)."""

    paraphrase: str | None  # after hygiene
    status: str
    hygiene_version: str
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class CachedAnswer(CacheHit):
    """One cache row as written: the hit plus the raw input and answer."""

    input_text: str
    answer: str  # raw, as the backend gave it


HIT_COLUMNS = [field.name for field in fields(CacheHit)]


def _digest(payload: str) -> str:
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class ParaphraseCache:
    """The answers of one backend configuration (one namespace)."""

    def __init__(self, cache_dir: Path, identity: Mapping[str, object]) -> None:
        canonical = json.dumps(identity, sort_keys=True, ensure_ascii=False)
        self.namespace = _digest(canonical)[:32]
        self.directory = Path(cache_dir) / self.namespace
        self._identity_json = json.dumps(identity, sort_keys=True, indent=2, ensure_ascii=False)

    def key(self, text: str) -> str:
        return _digest(f"{self.namespace}\x00{text}")

    def chunk_files(self) -> list[Path]:
        return sorted(self.directory.glob(CHUNK_GLOB))

    def _read(self, keys: Iterable[str], columns: list[str]) -> pa.Table | None:
        wanted = pa.array(sorted(set(keys)), type=pa.string())
        files = self.chunk_files()
        if not files or len(wanted) == 0:
            return None
        try:
            dataset = ds.dataset(files, schema=CACHE_SCHEMA, format="parquet")
            return dataset.to_table(columns=[KEY, *columns], filter=pc.field(KEY).isin(wanted))
        except (pa.ArrowInvalid, OSError) as exc:
            raise CacheCorruptError(
                f"cannot read paraphrase cache in {self.directory}: {exc}"
            ) from exc

    def lookup(self, keys: Iterable[str]) -> dict[str, CacheHit]:
        """The cached answers among ``keys``; keys never answered are absent."""
        found = self._read(keys, HIT_COLUMNS)
        if found is None:
            return {}
        values = [found.column(name).to_pylist() for name in HIT_COLUMNS]
        return {
            key: CacheHit(*row)
            for key, row in zip(
                found.column(KEY).to_pylist(), zip(*values, strict=True), strict=True
            )
        }

    def raw_answers(self, keys: Iterable[str]) -> dict[str, str]:
        """The raw backend answers of ``keys``, for re-cleaning under new hygiene rules."""
        found = self._read(keys, [ANSWER])
        if found is None:
            return {}
        return dict(
            zip(found.column(KEY).to_pylist(), found.column(ANSWER).to_pylist(), strict=True)
        )

    def commit(self, answers: Mapping[str, CachedAnswer]) -> Path | None:
        """Write one chunk of final answers durably; the file name is a hash of its keys."""
        if not answers:
            return None
        if not (self.directory / IDENTITY_FILE).exists():
            write_text_atomic(self._identity_json, self.directory / IDENTITY_FILE)
        keys: Sequence[str] = sorted(answers)
        columns: dict[str, list[object]] = {KEY: list(keys)}
        for field in fields(CachedAnswer):
            columns[field.name] = [getattr(answers[key], field.name) for key in keys]
        table = pa.table(columns, schema=CACHE_SCHEMA)  # matched to the schema by name
        target = self.directory / f"chunk-{_digest(chr(10).join(keys))[:32]}.parquet"
        return write_parquet_atomic(table, target)
