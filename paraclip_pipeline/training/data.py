"""What training checks of its data, and the order it sees the rows in.

The prepared rows (``prepare``) are sorted by caption_id and the order of epoch ``e`` is
a pure function of ``(seed, e, shuffle_buffer)``, so a resumed run, or a run on N
processes, sees exactly the same batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from paraclip_pipeline.modeling.factory import LoadedClip
from paraclip_pipeline.training.config import TrainConfig

if TYPE_CHECKING:
    from paraclip_pipeline.training.prepared import PreparedData


class TrainingDataError(ValueError):
    """Training input (pairs or image embeddings) that cannot be trained on as it is."""


def check_image_embeddings(data: PreparedData, clip: LoadedClip) -> None:
    """Refuse embeddings from another image tower, or of another width, before training."""
    foreign = sorted(m for m in data.image_embedding_models if not clip.accepts_image_model(m))
    if foreign:
        raise TrainingDataError(
            f"image embeddings were made by {foreign}, but the model being trained has image "
            f"tower {clip.model_id!r}; recompute image_embeddings with this profile"
        )
    if data.rows_with_image and data.dim != clip.embed_dim:
        raise TrainingDataError(
            f"image embeddings have dimension {data.dim}, the model's embed_dim is {clip.embed_dim}"
        )


def epoch_order(rows: int, seed: int, epoch: int) -> np.ndarray:
    """A full permutation of the rows: the order of an epoch that fits one shuffle window."""
    return np.random.default_rng([seed, epoch]).permutation(rows)


def window_orders(rows: int, window: int, seed: int, epoch: int) -> Iterator[np.ndarray]:
    """Epoch ``epoch``'s row order, one shuffle window at a time (bounded memory).

    Windows are ``window`` consecutive rows (in caption_id order); their order is permuted
    by one generator and the rows within window ``k`` by another (both from ``(seed,
    epoch)``). With a single window the order is exactly ``epoch_order``, the order of the
    in-memory loop it replaced, so runs that fit one window keep their weights.
    """
    windows = max(1, -(-rows // window))
    if windows == 1:
        yield epoch_order(rows, seed, epoch)
        return
    between = np.random.SeedSequence([seed, epoch], spawn_key=(0,))
    for k in np.random.default_rng(between).permutation(windows):
        start = int(k) * window
        within = np.random.SeedSequence([seed, epoch], spawn_key=(1, int(k)))
        yield start + np.random.default_rng(within).permutation(min(window, rows - start))


def micro_batch_size(rows: int, config: TrainConfig, world_size: int) -> int:
    """The configured batch, shrunk (to a multiple of the ranks) when there are fewer rows."""
    per_step = config.batch_size * config.grad_accum_steps
    if rows >= per_step:
        return config.batch_size
    micro = (rows // config.grad_accum_steps) // world_size * world_size
    if micro < 2:
        raise TrainingDataError(
            f"{rows} train rows are too few for a contrastive batch of at least 2 "
            f"with grad_accum_steps={config.grad_accum_steps} on {world_size} process(es)"
        )
    return micro
