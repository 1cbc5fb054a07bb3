"""The ``paraclip evaluate`` and ``paraclip data download`` commands (no Dagster needed)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from paraclip_pipeline.evaluation.errors import EvaluationError
from paraclip_pipeline.evaluation.public.download import EVAL_DATA_DIRNAME, download_all
from paraclip_pipeline.evaluation.public.embedding_cache import EmbeddingCache
from paraclip_pipeline.evaluation.public.models import ModelSpecError, load_models
from paraclip_pipeline.evaluation.public.render import files_scored, format_table, render_html
from paraclip_pipeline.evaluation.public.selection import Selection
from paraclip_pipeline.evaluation.public.suite import run_public_benchmarks
from paraclip_pipeline.settings import EVAL_DATA_ENV, Settings
from paraclip_pipeline.storage import StorageLayout, write_text_atomic


def eval_data_dir(settings: Settings) -> Path:
    return StorageLayout(settings.storage_root).root / EVAL_DATA_DIRNAME


def selection(settings: Settings, files: list[str] | None, max_items: int | None) -> Selection:
    """``--files`` / ``--max-items`` when given, else the settings' (the environment's)."""
    patterns = (
        tuple(part for value in files for part in value.split(os.pathsep) if part.strip())
        if files
        else settings.eval_files
    )
    return Selection(patterns, max_items if max_items is not None else settings.eval_max_items)


def run_evaluate(
    settings: Settings,
    model: str | list[str],
    data: Path | None,
    json_path: Path | None,
    html_path: Path | None,
    profile: str | None,
    resamples: int,
    chosen: Selection | None = None,
) -> int:
    data_dir = data or settings.eval_data_dir
    if data_dir is None:
        print(
            f"paraclip evaluate: give --data or set {EVAL_DATA_ENV} "
            "(`paraclip data download` fetches the benchmarks)",
            file=sys.stderr,
        )
        return 2
    started = time.perf_counter()
    try:
        models = load_models(model, profile or settings.model_profile)
        records = run_public_benchmarks(
            data_dir,
            models.models,
            models.baseline,
            seeds=models.seeds,
            resamples=resamples,
            progress=lambda message: print(message, file=sys.stderr, flush=True),
            selection=chosen,
            cache=EmbeddingCache(settings.storage_root),
        )
    except (EvaluationError, ModelSpecError) as error:
        print(f"paraclip evaluate: {error}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - started
    print(f"model: {models.description}; baseline: pretrained {models.profile}")
    print(f"scored: {files_scored(records)}")
    print(format_table(records))
    print(f"\n{len(records)} scores in {elapsed:.0f} s")
    if json_path is not None:
        write_text_atomic(json.dumps(records, indent=2), json_path)
    if html_path is not None:
        context = {
            "model": models.description,
            "baseline": f"pretrained {models.profile}",
            "data": str(data_dir),
            "files scored": files_scored(records),
        }
        write_text_atomic(render_html(records, "paraclip evaluate", context), html_path)
    return 0


def run_download(settings: Settings, dest: Path | None, only: list[str] | None) -> int:
    target = dest or eval_data_dir(settings)
    failed = download_all(target, only)
    if failed:
        print(f"could not fetch: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"done: export {EVAL_DATA_ENV}={target}")
    return 0
