"""The ParaCLIP objective: three symmetric InfoNCE terms over one batch.

L1(image, T''), L2(caption, T'), L3(T', T''), summed with configurable weights. Rows
without an image take part in L2 and L3 only: L1 is computed on the sub-batch of rows
that have one (masked, never dropped). With ``world_size > 1`` the features of every
rank are all-gathered first (with gradient, as open_clip's ``gather_with_grad``), so
each rank computes the loss of the global batch and DDP's gradient average equals the
single-process gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.distributed.nn
import torch.nn.functional as F

from paraclip_pipeline.training.config import LossWeights


@dataclass(frozen=True)
class LossTerms:
    l1: torch.Tensor
    l2: torch.Tensor
    l3: torch.Tensor
    total: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        return {name: float(getattr(self, name).detach()) for name in ("l1", "l2", "l3", "total")}


def symmetric_info_nce(
    left: torch.Tensor, right: torch.Tensor, scale: torch.Tensor, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """CLIP-style loss: mean of left->right and right->left cross-entropy; row i matches i.

    ``valid`` (bool per row) restricts both the anchors and the negatives to those rows.
    With fewer than one valid row the term is zero (still attached to the graph).
    """
    if valid is not None:
        left, right = left[valid], right[valid]
    if left.shape[0] == 0:
        return (left.sum() + right.sum()) * 0.0
    logits = scale * left @ right.T
    labels = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def gather_rows(tensor: torch.Tensor, world_size: int, with_grad: bool) -> torch.Tensor:
    """Concatenate every rank's rows in rank order (all ranks pass the same shape)."""
    if world_size == 1:
        return tensor
    if with_grad:
        return torch.cat(torch.distributed.nn.all_gather(tensor), dim=0)
    gathered = [torch.empty_like(tensor) for _ in range(world_size)]
    dist.all_gather(gathered, tensor)
    return torch.cat(gathered, dim=0)


class ParaClipLoss(torch.nn.Module):
    def __init__(
        self,
        weights: LossWeights | None = None,
        fixed_temperature: float | None = None,
        world_size: int = 1,
    ) -> None:
        super().__init__()
        self.weights = weights or LossWeights()
        self.fixed_temperature = fixed_temperature
        self.world_size = world_size

    def forward(
        self,
        caption: torch.Tensor,
        paraphrase1: torch.Tensor,
        paraphrase2: torch.Tensor,
        image: torch.Tensor,
        has_image: torch.Tensor,
        logit_scale: torch.Tensor | None = None,
    ) -> LossTerms:
        """Features are per-rank rows; text features are L2-normalised here, as is ``image``.

        ``logit_scale`` is the model's (already exponentiated) scale; it is ignored
        when the loss has a fixed temperature.
        """
        if self.fixed_temperature is not None:
            scale = torch.tensor(1.0 / self.fixed_temperature, device=caption.device)
        elif logit_scale is None:
            raise ValueError("ParaClipLoss needs logit_scale unless fixed_temperature is set")
        else:
            scale = logit_scale
        caption, paraphrase1, paraphrase2 = (
            gather_rows(F.normalize(t.float(), dim=-1), self.world_size, with_grad=True)
            for t in (caption, paraphrase1, paraphrase2)
        )
        image = gather_rows(F.normalize(image.float(), dim=-1), self.world_size, with_grad=False)
        # As uint8: gloo cannot all-gather bool tensors.
        has_image = gather_rows(has_image.to(torch.uint8), self.world_size, with_grad=False).bool()
        l1 = symmetric_info_nce(image, paraphrase2, scale, valid=has_image)
        l2 = symmetric_info_nce(caption, paraphrase1, scale)
        l3 = symmetric_info_nce(paraphrase1, paraphrase2, scale)
        total = (
            self.weights.image_paraphrase2 * l1
            + self.weights.caption_paraphrase1 * l2
            + self.weights.paraphrase1_paraphrase2 * l3
        )
        return LossTerms(l1=l1, l2=l2, l3=l3, total=total)
