"""A killed stage's scratch directory is swept by the next one; a live one never is."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from paraclip_pipeline.scratch import scratch_directory, sweep_scratch

HOLDER = """
import sys, time
from pathlib import Path
from paraclip_pipeline.scratch import scratch_directory
with scratch_directory(Path(sys.argv[1]), "holder-") as directory:
    (directory / "spill.parquet").write_bytes(b"x" * 1000)
    print(directory, flush=True)
    time.sleep(60)
"""


def _holder(parent: Path) -> tuple[subprocess.Popen[str], Path]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(parent)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    return process, Path(process.stdout.readline().strip())


def test_a_killed_owners_directory_is_swept_and_a_live_ones_is_not(tmp_path: Path) -> None:
    foreign = tmp_path / "not-ours"
    foreign.mkdir()
    alive, alive_dir = _holder(tmp_path)
    killed, killed_dir = _holder(tmp_path)
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        assert killed_dir.is_dir()  # nothing removed it: the process died mid-block
        with scratch_directory(tmp_path, "next-") as mine:
            assert (mine / ".owner").is_file() and not killed_dir.exists()
            assert alive_dir.is_dir() and (alive_dir / "spill.parquet").exists()
            assert sweep_scratch(tmp_path) == []  # mine is held too
        assert not mine.exists() and foreign.is_dir()
    finally:
        alive.kill()
        alive.wait()
    assert sweep_scratch(tmp_path) == [alive_dir]
