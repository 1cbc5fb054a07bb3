"""Deployment settings read from the environment, with offline defaults for a repo checkout.

The one place the pipeline's environment variables are read: ``defs/resources.py`` builds
the Dagster resources from a ``Settings``, and ``instance.py`` the local dagster.yaml.
Only values that must be known when the code location loads live here (the filter rules
path feeds ``filtered_pairs``' code version); everything tunable per run is a Dagster
resource field instead, so the launchpad can change it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from paraclip_pipeline.retrain_policy import (
    DEFAULT_POLICY,
    DEFAULT_RETRAIN_POLICY,
    RETRAIN_POLICY_ENV,
    RetrainPolicy,
)
from paraclip_pipeline.storage import DEFAULT_STORAGE_ROOT, STORAGE_ROOT_ENV

REPO_ROOT = Path(__file__).resolve().parents[1]

SHARDS_LOCATION_ENV = "PARACLIP_SHARDS_LOCATION"
FILTER_RULES_ENV = "PARACLIP_FILTER_RULES"
STS_DIR_ENV = "PARACLIP_STS_DIR"
IMAGE_ROOT_ENV = "PARACLIP_IMAGE_ROOT"
TRAIN_CONFIG_ENV = "PARACLIP_TRAIN_CONFIG"
MODEL_PROFILE_ENV = "PARACLIP_MODEL_PROFILE"
REFRESH_CRON_ENV = "PARACLIP_REFRESH_CRON"
LLM_POOL_LIMIT_ENV = "PARACLIP_LLM_CONCURRENCY"
LLM_BACKEND_ENV = "PARACLIP_LLM_BACKEND"
LLM_MODEL_ENV = "PARACLIP_LLM_MODEL"
LLM_BASE_URL_ENV = "PARACLIP_LLM_BASE_URL"
LLM_API_KEY_ENV_ENV = "PARACLIP_LLM_API_KEY_ENV"
KEEP_CHECKPOINTS_ENV = "PARACLIP_KEEP_CHECKPOINTS"
DEFAULT_KEEP_CHECKPOINTS = 3
DEFAULT_LLM_POOL_LIMIT = 2
# A directory laid out like ../shared/data/eval (public benchmarks; `paraclip data download`).
EVAL_DATA_ENV = "PARACLIP_EVAL_DATA"
# Which of its files the report scores (globs relative to it, os.pathsep-separated; default all)
# and at most how many items of each (a deterministic subsample; default all): the demo's cap.
EVAL_FILES_ENV = "PARACLIP_EVAL_FILES"
EVAL_MAX_ITEMS_ENV = "PARACLIP_EVAL_MAX_ITEMS"
# A Ray cluster (`host:port` of the head's GCS, or `ray://host:10001`): set, the heavy steps run
# there (issue 15, docs/deploying.md); unset, everything runs in-process and Ray is not imported.
RAY_ADDRESS_ENV = "PARACLIP_RAY_ADDRESS"
# Partitions per Dagster run in a backfill when Ray is on (BackfillPolicy.multi_run): known when
# the code location loads, as the backfill policy is part of the asset definitions.
RAY_PARTITIONS_PER_RUN_ENV = "PARACLIP_RAY_PARTITIONS_PER_RUN"
DEFAULT_RAY_PARTITIONS_PER_RUN = 16


def _env(name: str) -> str | None:
    # Compose passes unset variables as empty strings: treat those as unset.
    return os.environ.get(name) or None


def _path_from_env(name: str) -> Path | None:
    value = _env(name)
    return Path(value).expanduser().resolve() if value else None


def _eval_files() -> tuple[str, ...]:
    return tuple(part for part in (_env(EVAL_FILES_ENV) or "").split(os.pathsep) if part.strip())


def _eval_max_items() -> int | None:
    value = _env(EVAL_MAX_ITEMS_ENV)
    if value is None:
        return None
    if not value.strip().isdigit() or int(value) < 1:
        raise ValueError(f"{EVAL_MAX_ITEMS_ENV}={value!r}: expected a whole number >= 1")
    return int(value)


def _image_root() -> Path | None:
    """Where relative image paths resolve: ``PARACLIP_IMAGE_ROOT`` when set, so shards
    anywhere can name images in one tree; else the demo's ``data/images`` for the bundled
    shards, and each shard's own directory (None) for another shard location."""
    if _env(IMAGE_ROOT_ENV):
        return _path_from_env(IMAGE_ROOT_ENV)
    return None if _env(SHARDS_LOCATION_ENV) else REPO_ROOT / "data" / "images"


@dataclass(frozen=True)
class Settings:
    storage_root: Path
    shards_location: str
    image_root: Path | None
    filter_rules_path: Path
    train_config_path: Path
    # No default: the STS data lives outside the repository (make exports the shared copy).
    sts_dir: Path | None
    model_profile: str
    refresh_cron: str
    # The paraphraser's backend and endpoint; the other paraphraser fields are launchpad knobs.
    llm_backend: str = "wordnet"
    llm_model: str | None = None
    llm_base_url: str | None = None
    llm_api_key_env: str | None = None
    # Pool limit of llm_backend in a new local instance's dagster.yaml.
    llm_pool_limit: int = DEFAULT_LLM_POOL_LIMIT
    # A directory laid out like ../shared/data/eval (public benchmarks).
    eval_data_dir: Path | None = None
    eval_files: tuple[str, ...] = ()
    eval_max_items: int | None = None
    ray_address: str | None = None
    ray_partitions_per_run: int = DEFAULT_RAY_PARTITIONS_PER_RUN
    # Checkpoints kept besides the pinned ones (retention runs after each training).
    keep_checkpoints: int = DEFAULT_KEEP_CHECKPOINTS
    # When automation retrains (retrain_policy.py says why the default is what it is).
    retrain_policy: RetrainPolicy = DEFAULT_POLICY

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            storage_root=_path_from_env(STORAGE_ROOT_ENV) or Path(DEFAULT_STORAGE_ROOT).resolve(),
            shards_location=_env(SHARDS_LOCATION_ENV) or str(REPO_ROOT / "data" / "shards"),
            image_root=_image_root(),
            filter_rules_path=_path_from_env(FILTER_RULES_ENV)
            or REPO_ROOT / "data" / "filter_rules.yaml",
            train_config_path=_path_from_env(TRAIN_CONFIG_ENV)
            or REPO_ROOT / "data" / "configs" / "train_offline.yaml",
            sts_dir=_path_from_env(STS_DIR_ENV),
            model_profile=_env(MODEL_PROFILE_ENV) or "offline-minilm",
            refresh_cron=_env(REFRESH_CRON_ENV) or "0 2 * * *",
            llm_backend=_env(LLM_BACKEND_ENV) or "wordnet",
            llm_model=_env(LLM_MODEL_ENV),
            llm_base_url=_env(LLM_BASE_URL_ENV),
            llm_api_key_env=_env(LLM_API_KEY_ENV_ENV),
            llm_pool_limit=int(_env(LLM_POOL_LIMIT_ENV) or DEFAULT_LLM_POOL_LIMIT),
            eval_data_dir=_path_from_env(EVAL_DATA_ENV),
            eval_files=_eval_files(),
            eval_max_items=_eval_max_items(),
            ray_address=_env(RAY_ADDRESS_ENV),
            ray_partitions_per_run=int(
                _env(RAY_PARTITIONS_PER_RUN_ENV) or DEFAULT_RAY_PARTITIONS_PER_RUN
            ),
            keep_checkpoints=int(_env(KEEP_CHECKPOINTS_ENV) or DEFAULT_KEEP_CHECKPOINTS),
            retrain_policy=RetrainPolicy.parse(_env(RETRAIN_POLICY_ENV) or DEFAULT_RETRAIN_POLICY),
        )


__all__ = ["STORAGE_ROOT_ENV", "Settings"]
