"""Checkpoints are read without the training package; its code version covers every module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import paraclip_pipeline.training as training_package
from paraclip_pipeline.training.checkpoint import code_version, training_sources


def test_code_version_hashes_every_training_module() -> None:
    package_dir = Path(training_package.__file__).parent
    names = {path.name for path in training_sources()}
    assert names == {path.name for path in package_dir.glob("*.py")}
    assert {"data.py", "optim.py", "loop.py", "checkpoint.py", "losses.py"} <= names
    assert len(code_version()["training_code_sha256"]) == 64


def test_reading_a_checkpoint_does_not_import_training_or_torch() -> None:
    probe = (
        "import sys\n"
        "import paraclip_pipeline.modeling.checkpoint_format\n"
        "import paraclip_pipeline.lineage.query\n"
        "print(sorted(m for m in sys.modules\n"
        "             if m == 'torch' or m.startswith('paraclip_pipeline.training')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
