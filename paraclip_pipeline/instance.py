"""The local Dagster instance under the storage root (SQLite run storage by default).

``paraclip demo`` and ``paraclip ui`` both use it, so the runs of the demo show up
in the UI afterwards. Docker deployments bring their own dagster.yaml (Postgres).
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from paraclip_pipeline.settings import DEFAULT_LLM_POOL_LIMIT
from paraclip_pipeline.storage import write_text_atomic


def local_instance_config(llm_limit: int = DEFAULT_LLM_POOL_LIMIT) -> dict:
    """``llm_limit`` is ``Settings.llm_pool_limit`` (``PARACLIP_LLM_CONCURRENCY``)."""
    return {
        "telemetry": {"enabled": False},
        "nux": {"enabled": False},
        "concurrency": {
            # Only the paraphrase steps declare a pool (llm_backend): this caps how many
            # shards talk to the LLM at once, whatever else runs.
            "pools": {"default_limit": llm_limit, "granularity": "op"},
            "runs": {
                "max_concurrent_runs": 4,
                # One run per shard partition at a time: a duplicate waits in the queue
                # instead of paying for the same work twice.
                "tag_concurrency_limits": [
                    {
                        "key": "dagster/partition",
                        "value": {"applyLimitPerUniqueValue": True},
                        "limit": 1,
                    }
                ],
            },
        },
    }


def prepare_dagster_home(dagster_home: Path, llm_limit: int = DEFAULT_LLM_POOL_LIMIT) -> Path:
    """Create DAGSTER_HOME with a dagster.yaml unless the user already wrote one."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    config_path = dagster_home / "dagster.yaml"
    if not config_path.exists():
        config = local_instance_config(llm_limit)
        write_text_atomic(yaml.safe_dump(config, sort_keys=False), config_path)
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    return dagster_home
