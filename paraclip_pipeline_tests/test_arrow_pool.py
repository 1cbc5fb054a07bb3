"""Arrow's memory pool in pipeline processes (``arrow_pool``), each case in a fresh process:
pyarrow fixes its pool when it is first imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from paraclip_pipeline.arrow_pool import ARROW_POOL_ENV

# Reads a Parquet file and says which pool is the default and which holds the table.
PROBE = """
import sys
{imports}
import pyarrow as pa, pyarrow.parquet as pq
table = pq.read_table(sys.argv[1])
held = {{name: getattr(pa, name + "_memory_pool")().bytes_allocated()
        for name in ("mimalloc", "jemalloc", "system")}}
print(pa.default_memory_pool().backend_name, max(held, key=held.get))
"""


def _pools(tmp_path: Path, imports: str, **env: str) -> list[str]:
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"text": [f"caption {index}" for index in range(50_000)]}), path)
    environment = {key: value for key, value in os.environ.items() if key != ARROW_POOL_ENV}
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(imports=imports), str(path)],
        env=environment | env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.split()


def _has_jemalloc() -> bool:
    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:
        return False
    return True


needs_jemalloc = pytest.mark.skipif(
    sys.platform != "linux" or not _has_jemalloc(), reason="pyarrow built without jemalloc"
)


@needs_jemalloc
def test_importing_the_package_puts_arrow_on_jemalloc(tmp_path: Path) -> None:
    assert _pools(tmp_path, "") != ["jemalloc", "jemalloc"]  # pyarrow's own default differs
    assert _pools(tmp_path, "import paraclip_pipeline") == ["jemalloc", "jemalloc"]
    code = "from paraclip_pipeline.arrow_pool import use_jemalloc\nprint(use_jemalloc())"
    assert _pools(tmp_path, code)[0] == "jemalloc"


def test_an_operator_choice_of_pool_is_kept(tmp_path: Path) -> None:
    chosen = {ARROW_POOL_ENV: "system"}
    assert _pools(tmp_path, "import paraclip_pipeline", **chosen) == ["system", "system"]
