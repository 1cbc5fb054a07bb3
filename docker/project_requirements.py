"""Print the runtime requirements that pyproject.toml declares, one per line.

docker/Dockerfile installs them in a layer of their own before copying the package's
code, so a code change rebuilds only the last, small layer instead of every dependency.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path


class PyprojectError(ValueError):
    """pyproject.toml is missing, unreadable, or declares no usable dependency list."""


def runtime_requirements(pyproject: Path) -> list[str]:
    """The ``[project] dependencies`` of ``pyproject``, in declared order."""
    try:
        with open(pyproject, "rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError as error:
        raise PyprojectError(f"{pyproject}: file not found") from error
    except tomllib.TOMLDecodeError as error:
        raise PyprojectError(f"{pyproject}: not valid TOML ({error})") from error
    dependencies = document.get("project", {}).get("dependencies")
    if not isinstance(dependencies, list) or not all(
        isinstance(item, str) and item.strip() for item in dependencies
    ):
        raise PyprojectError(
            f"{pyproject}: [project] dependencies must be a list of requirement strings"
        )
    return dependencies


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: project_requirements.py PATH/TO/pyproject.toml", file=sys.stderr)
        return 2
    try:
        requirements = runtime_requirements(Path(argv[0]))
    except PyprojectError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print("\n".join(requirements))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
