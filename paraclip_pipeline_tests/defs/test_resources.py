"""Resources mirror the plain configs and are built from Settings (the environment read once)."""

from __future__ import annotations

from typing import Optional

import pytest

from paraclip_pipeline.defs.resources import ParaphraserResource, RayResource, default_resources
from paraclip_pipeline.paraphrase.config import ParaphraserConfig
from paraclip_pipeline.settings import Settings


def test_paraphraser_resource_has_every_config_field_with_a_matching_type() -> None:
    resource = ParaphraserResource.model_fields
    config = ParaphraserConfig.model_fields
    assert set(resource) == set(config)
    for name, field in config.items():
        if name == "backend":  # the one field the launchpad always shows with its value
            assert resource[name].annotation == field.annotation
            assert resource[name].default == field.default
            continue
        # Unset (None) means "ParaphraserConfig's default", so defaults live in one place.
        assert resource[name].annotation == Optional[field.annotation], name  # noqa: UP045
        assert resource[name].default is None, name


def test_resource_config_round_trips_every_field() -> None:
    values = {"backend": "openai_compatible", "model": "m", "base_url": "http://x/v1", "seed": 3}
    assert ParaphraserResource(**values).config() == ParaphraserConfig(**values)


def test_llm_settings_come_from_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARACLIP_LLM_BACKEND", "openai_compatible")
    monkeypatch.setenv("PARACLIP_LLM_MODEL", "gemma")
    monkeypatch.setenv("PARACLIP_LLM_BASE_URL", "")  # compose passes unset as empty
    monkeypatch.setenv("PARACLIP_LLM_API_KEY_ENV", "OPENAI_API_KEY")
    monkeypatch.setenv("PARACLIP_LLM_CONCURRENCY", "5")
    settings = Settings.from_env()
    assert settings.llm_pool_limit == 5
    # The environment changes after loading: the resources follow the settings, not it.
    monkeypatch.setenv("PARACLIP_LLM_MODEL", "other")
    paraphraser = default_resources(settings)["paraphraser"]
    assert isinstance(paraphraser, ParaphraserResource)
    assert (paraphraser.backend, paraphraser.model) == ("openai_compatible", "gemma")
    assert (paraphraser.base_url, paraphraser.api_key_env) == (None, "OPENAI_API_KEY")


def test_sts_dir_has_no_default_outside_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PARACLIP_STS_DIR", raising=False)
    assert Settings.from_env().sts_dir is None
    monkeypatch.setenv("PARACLIP_STS_DIR", "/data/sts")
    assert str(Settings.from_env().sts_dir) == "/data/sts"


def test_ray_is_off_unless_its_address_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PARACLIP_RAY_ADDRESS", raising=False)
    off = default_resources(Settings.from_env())["ray"]
    assert isinstance(off, RayResource) and not off.enabled and off.engine == "in-process"
    monkeypatch.setenv("PARACLIP_RAY_ADDRESS", "10.0.0.5:6379")
    monkeypatch.setenv("PARACLIP_RAY_PARTITIONS_PER_RUN", "4")
    settings = Settings.from_env()
    on = default_resources(settings)["ray"]
    assert isinstance(on, RayResource) and on.address == "10.0.0.5:6379" and on.engine == "ray"
    assert settings.ray_partitions_per_run == 4
