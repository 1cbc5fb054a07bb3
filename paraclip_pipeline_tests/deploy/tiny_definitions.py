"""A two-asset code location for the deployment tests (no torch, loads in a second).

The Postgres test materializes it with the docker instance config, and the code-server
test serves it with the image's CMD in place of ``paraclip_pipeline.definitions``.
"""

from __future__ import annotations

import dagster as dg

CAPTIONS = ["a dog on a beach", "two cats asleep on a sofa"]


@dg.asset
def tiny_captions() -> list[str]:
    return list(CAPTIONS)


@dg.asset
def tiny_caption_lengths(tiny_captions: list[str]) -> dg.MaterializeResult:
    lengths = [len(caption.split()) for caption in tiny_captions]
    return dg.MaterializeResult(
        value=lengths, metadata={"rows": len(lengths), "total_words": sum(lengths)}
    )


defs = dg.Definitions(assets=[tiny_captions, tiny_caption_lengths])
