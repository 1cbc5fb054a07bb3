"""Content-addressed, crash-safe cache of raw backend answers.

Layout: ``<cache_dir>/<namespace>/identity.json`` plus ``chunk-<digest>.parquet``
files. The namespace is a hash of everything but the input text (backend, model,
template, sampling parameters), so answers from different settings never mix; the key
of one answer is a hash of the namespace and the input text. Each committed chunk is
one Parquet file written atomically (temp file + rename), so a kill loses at most the
chunk in flight, concurrent shard runs in separate processes never contend for a lock
(as a single DuckDB file would), and DuckDB can still query the cache with
``read_parquet('<namespace>/*.parquet')``. Only raw answers are stored; hygiene is
re-applied on every read, so a hygiene fix needs no new model calls.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from paraclip_pipeline.paraphrase.errors import CacheCorruptError
from paraclip_pipeline.storage import write_parquet_atomic, write_text_atomic

KEY = "key"
INPUT_TEXT = "input_text"
ANSWER = "answer"
PROMPT_TOKENS = "prompt_tokens"
COMPLETION_TOKENS = "completion_tokens"

CACHE_SCHEMA = pa.schema(
    [
        pa.field(KEY, pa.string(), nullable=False),
        pa.field(INPUT_TEXT, pa.string(), nullable=False),
        pa.field(ANSWER, pa.string(), nullable=False),
        pa.field(PROMPT_TOKENS, pa.int64(), nullable=False),
        pa.field(COMPLETION_TOKENS, pa.int64(), nullable=False),
    ]
)
IDENTITY_FILE = "identity.json"
CHUNK_GLOB = "chunk-*.parquet"


@dataclass(frozen=True)
class CachedAnswer:
    input_text: str
    answer: str
    prompt_tokens: int
    completion_tokens: int


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

    def lookup(self, keys: Iterable[str]) -> dict[str, CachedAnswer]:
        """The cached answers among ``keys``; keys never answered are absent."""
        wanted = pa.array(sorted(set(keys)), type=pa.string())
        files = self.chunk_files()
        if not files or len(wanted) == 0:
            return {}
        try:
            dataset = ds.dataset(files, schema=CACHE_SCHEMA, format="parquet")
            found = dataset.to_table(filter=pc.field(KEY).isin(wanted))
        except (pa.ArrowInvalid, OSError) as exc:
            raise CacheCorruptError(
                f"cannot read paraphrase cache in {self.directory}: {exc}"
            ) from exc
        columns = found.to_pydict()
        return {
            key: CachedAnswer(text, answer, prompt, completion)
            for key, text, answer, prompt, completion in zip(
                columns[KEY],
                columns[INPUT_TEXT],
                columns[ANSWER],
                columns[PROMPT_TOKENS],
                columns[COMPLETION_TOKENS],
                strict=True,
            )
        }

    def commit(self, answers: Mapping[str, CachedAnswer]) -> Path | None:
        """Write one chunk of final answers durably; the file name is a hash of its keys."""
        if not answers:
            return None
        if not (self.directory / IDENTITY_FILE).exists():
            write_text_atomic(self._identity_json, self.directory / IDENTITY_FILE)
        keys: Sequence[str] = sorted(answers)
        table = pa.table(
            {
                KEY: keys,
                INPUT_TEXT: [answers[key].input_text for key in keys],
                ANSWER: [answers[key].answer for key in keys],
                PROMPT_TOKENS: [answers[key].prompt_tokens for key in keys],
                COMPLETION_TOKENS: [answers[key].completion_tokens for key in keys],
            },
            schema=CACHE_SCHEMA,
        )
        target = self.directory / f"chunk-{_digest(chr(10).join(keys))[:32]}.parquet"
        return write_parquet_atomic(table, target)
