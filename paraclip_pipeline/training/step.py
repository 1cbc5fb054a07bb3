"""One training step's pieces: the trainable module, forward + loss + backward, reseeding.

Shared by the loop and ``benchmarks/bench_training.py`` (which times steps alone).
"""

from __future__ import annotations

import numpy as np
import torch

from paraclip_pipeline.modeling.factory import trailing_pad_id, trim_trailing_padding
from paraclip_pipeline.training.losses import LossTerms, ParaClipLoss


class TextFeatures(torch.nn.Module):
    """The trainable part of one step, as a module so DDP can synchronise its gradients."""

    def __init__(self, clip_model: torch.nn.Module) -> None:
        super().__init__()
        self.clip = clip_model
        self.pad_id = trailing_pad_id(clip_model)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Short captions padded to the full context would spend most FLOPs on padding.
        tokens = trim_trailing_padding(tokens, self.pad_id)
        return self.clip.encode_text(tokens), self.clip.logit_scale.exp()


def forward_backward(
    step_module: torch.nn.Module,
    loss_fn: ParaClipLoss,
    batch_tokens: torch.Tensor,
    images: torch.Tensor,
    has_image: torch.Tensor,
    *,
    bf16: bool = False,
    loss_divisor: int = 1,
) -> LossTerms:
    """One micro-batch: text features of (captions; T'; T'') stacked, the loss, backward.

    The text tower runs under bf16 autocast when asked; the loss is always float32.
    """
    device_type = batch_tokens.device.type
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
        features, logit_scale = step_module(batch_tokens)
    caption, paraphrase1, paraphrase2 = features.float().chunk(3)
    terms = loss_fn(caption, paraphrase1, paraphrase2, images, has_image, logit_scale.float())
    (terms.total / loss_divisor).backward()
    return terms


def seed_step(seed: int, step: int, rank: int) -> None:
    """Reseed torch (dropout) from (seed, step, rank): resuming needs no saved RNG state."""
    torch.manual_seed(int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0]))


def mean_terms(terms: list[LossTerms]) -> dict[str, float]:
    floats = [term.as_floats() for term in terms]
    return {key: sum(f[key] for f in floats) / len(floats) for key in floats[0]}
