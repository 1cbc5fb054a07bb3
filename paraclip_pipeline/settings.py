"""Deployment settings read from the environment, with offline defaults for a repo checkout.

Only values that must be known when the code location loads live here (the filter rules
path feeds ``filtered_pairs``' code version); everything tunable per run is a Dagster
resource field instead, so the launchpad can change it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from paraclip_pipeline.storage import STORAGE_ROOT_ENV, default_storage_root

REPO_ROOT = Path(__file__).resolve().parents[1]

SHARDS_LOCATION_ENV = "PARACLIP_SHARDS_LOCATION"
FILTER_RULES_ENV = "PARACLIP_FILTER_RULES"
STS_DIR_ENV = "PARACLIP_STS_DIR"
IMAGE_ROOT_ENV = "PARACLIP_IMAGE_ROOT"
TRAIN_CONFIG_ENV = "PARACLIP_TRAIN_CONFIG"
MODEL_PROFILE_ENV = "PARACLIP_MODEL_PROFILE"
REFRESH_CRON_ENV = "PARACLIP_REFRESH_CRON"
LLM_POOL_LIMIT_ENV = "PARACLIP_LLM_CONCURRENCY"
# A directory laid out like ../shared/data/eval (public benchmarks; `paraclip data download`).
EVAL_DATA_ENV = "PARACLIP_EVAL_DATA"


def _path_from_env(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else default


def _image_root() -> Path | None:
    if os.environ.get(IMAGE_ROOT_ENV):
        return _path_from_env(IMAGE_ROOT_ENV, REPO_ROOT)
    # The bundled demo shards reference photos in data/images, beside data/shards; other
    # shard locations keep image paths inside each shard's own directory.
    return None if os.environ.get(SHARDS_LOCATION_ENV) else REPO_ROOT / "data"


@dataclass(frozen=True)
class Settings:
    storage_root: Path
    shards_location: str
    image_root: Path | None
    filter_rules_path: Path
    train_config_path: Path
    sts_dir: Path | None
    model_profile: str
    refresh_cron: str
    eval_data_dir: Path | None = None

    @classmethod
    def from_env(cls) -> Settings:
        default_sts = REPO_ROOT.parent / "shared" / "data" / "sts"
        sts_value = os.environ.get(STS_DIR_ENV)
        if sts_value:
            sts_dir: Path | None = Path(sts_value).expanduser().resolve()
        else:
            sts_dir = default_sts if default_sts.is_dir() else None
        return cls(
            storage_root=default_storage_root(),
            shards_location=os.environ.get(SHARDS_LOCATION_ENV, str(REPO_ROOT / "data" / "shards")),
            image_root=_image_root(),
            filter_rules_path=_path_from_env(
                FILTER_RULES_ENV, REPO_ROOT / "data" / "filter_rules.yaml"
            ),
            train_config_path=_path_from_env(
                TRAIN_CONFIG_ENV, REPO_ROOT / "data" / "configs" / "train_offline.yaml"
            ),
            sts_dir=sts_dir,
            model_profile=os.environ.get(MODEL_PROFILE_ENV, "offline-minilm"),
            refresh_cron=os.environ.get(REFRESH_CRON_ENV, "0 2 * * *"),
            eval_data_dir=(
                _path_from_env(EVAL_DATA_ENV, REPO_ROOT) if os.environ.get(EVAL_DATA_ENV) else None
            ),
        )


__all__ = ["STORAGE_ROOT_ENV", "Settings"]
