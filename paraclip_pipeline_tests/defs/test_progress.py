"""The heartbeat of long steps, and the silenced model-load chatter."""

from __future__ import annotations

import logging
import os
import time

from paraclip_pipeline.defs.progress import heartbeat
from paraclip_pipeline.quiet import silence_model_chatter


def test_a_silent_step_still_reports_within_the_interval() -> None:
    messages: list[str] = []
    with heartbeat(messages.append, "training", every_s=0.2) as progress:
        progress("step 1/3")
        time.sleep(0.75)
        progress("step 2/3")
    assert messages[0] == "step 1/3" and messages[-1] == "step 2/3"
    beats = messages[1:-1]
    assert 2 <= len(beats) <= 4
    assert all(b.startswith("training: running for ") and "(last: step 1/3)" in b for b in beats)


def test_a_chatty_step_gets_no_extra_beats() -> None:
    messages: list[str] = []
    with heartbeat(messages.append, "encoding", every_s=0.3) as progress:
        for i in range(6):
            progress(f"batch {i}")
            time.sleep(0.05)
    assert messages == [f"batch {i}" for i in range(6)]


def test_open_clip_chatter_is_dropped_and_other_warnings_kept(monkeypatch) -> None:
    monkeypatch.delenv("TRANSFORMERS_VERBOSITY", raising=False)
    silence_model_chatter()
    assert os.environ["TRANSFORMERS_VERBOSITY"] == "error"
    root = logging.getLogger()
    chatter = root.makeRecord(
        "root",
        logging.WARNING,
        "/x/open_clip/factory.py",
        587,
        "Model ViT-B-32 initialized partially.",
        None,
        None,
    )
    other = root.makeRecord(
        "root", logging.WARNING, "/x/open_clip/factory.py", 600, "checkpoint mismatch", None, None
    )
    assert not root.filter(chatter) and root.filter(other)
