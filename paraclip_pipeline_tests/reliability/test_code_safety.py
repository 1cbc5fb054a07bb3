"""Static guarantees over the package source: no pickle-executing checkpoint loads."""

from __future__ import annotations

import ast
from pathlib import Path

import paraclip_pipeline

PACKAGE_DIR = Path(paraclip_pipeline.__file__).parent


def _torch_load_calls() -> list[tuple[Path, ast.Call]]:
    calls = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "torch":
                imported = {alias.name for alias in node.names}
                assert "load" not in imported, f"{path}:{node.lineno}: use torch.load explicitly"
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "load"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "torch"
            ):
                calls.append((path, node))
    return calls


def _passes_weights_only(call: ast.Call) -> bool:
    return any(
        keyword.arg == "weights_only"
        and isinstance(keyword.value, ast.Constant)
        and keyword.value.value is True
        for keyword in call.keywords
    )


def test_every_torch_load_passes_weights_only_true() -> None:
    calls = _torch_load_calls()
    assert calls, "expected the training-state loader to call torch.load"
    unsafe = [
        f"{path.relative_to(PACKAGE_DIR.parent)}:{call.lineno}"
        for path, call in calls
        if not _passes_weights_only(call)
    ]
    assert unsafe == [], f"torch.load without weights_only=True (unpickles code): {unsafe}"


def test_the_check_catches_an_unsafe_call() -> None:
    unsafe = ast.parse("torch.load(path, map_location='cpu')").body[0].value
    safe = ast.parse("torch.load(path, weights_only=True)").body[0].value
    assert isinstance(unsafe, ast.Call) and isinstance(safe, ast.Call)
    assert not _passes_weights_only(unsafe) and _passes_weights_only(safe)
