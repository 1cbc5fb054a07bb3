"""Silence model-load chatter, in one place.

Every step that loads a model used to print, on the run's stderr: open_clip's "Model ...
initialized partially" / "No pretrained weights loaded" (root-logger warnings), the
transformers 5 "BertModel LOAD REPORT" table (a logger warning) and tqdm/Hugging Face
progress bars. None of it is actionable inside a run; what is (a profile without
pretrained weights) is stated in the report. Environment variables are only defaults, so
an operator can turn any of it back on (e.g. ``TRANSFORMERS_VERBOSITY=info``).
"""

from __future__ import annotations

import logging
import os
import sys

QUIET_ENV = {
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TQDM_DISABLE": "1",
    "TOKENIZERS_PARALLELISM": "false",  # its fork warning is chatter too
}
# open_clip logs through the root logger, so it cannot be levelled by name.
_OPEN_CLIP_CHATTER = ("initialized partially", "No pretrained weights loaded")


class _OpenClipChatter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            "open_clip" in record.pathname
            and any(text in record.getMessage() for text in _OPEN_CLIP_CHATTER)
        )


_FILTER = _OpenClipChatter()


def silence_model_chatter() -> None:
    """Idempotent; call before models load (the code location and the CLI do)."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    root = logging.getLogger()
    if _FILTER not in root.filters:
        root.addFilter(_FILTER)
    # Libraries imported before this call read their settings already; set them directly.
    if "transformers" in sys.modules:
        sys.modules["transformers"].logging.set_verbosity_error()
    if "huggingface_hub" in sys.modules:
        sys.modules["huggingface_hub"].utils.disable_progress_bars()
