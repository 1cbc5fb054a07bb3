"""The ParaCLIP loss terms against a by-hand numpy reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from paraclip_pipeline.training.config import LossWeights
from paraclip_pipeline.training.losses import ParaClipLoss, symmetric_info_nce


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _reference_info_nce(a: np.ndarray, b: np.ndarray, scale: float) -> float:
    """Mean of the two cross-entropies, written out with an explicit log-softmax."""
    logits = scale * _normalize(a) @ _normalize(b).T

    def cross_entropy(matrix: np.ndarray) -> float:
        log_softmax = matrix - np.log(np.exp(matrix).sum(axis=1, keepdims=True))
        return float(-np.mean(np.diag(log_softmax)))

    return (cross_entropy(logits) + cross_entropy(logits.T)) / 2


@pytest.fixture
def features() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {name: rng.standard_normal((5, 4)) for name in ("caption", "p1", "p2", "image")}


def _tensors(features: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {name: torch.tensor(value, dtype=torch.float32) for name, value in features.items()}


def test_terms_match_reference_with_weights(features: dict[str, np.ndarray]) -> None:
    t = _tensors(features)
    scale = 7.0
    loss = ParaClipLoss(LossWeights(image_paraphrase2=0.5, paraphrase1_paraphrase2=2.0))
    terms = loss(
        t["caption"],
        t["p1"],
        t["p2"],
        t["image"],
        torch.ones(5, dtype=torch.bool),
        torch.tensor(scale),
    )
    l1 = _reference_info_nce(features["image"], features["p2"], scale)
    l2 = _reference_info_nce(features["caption"], features["p1"], scale)
    l3 = _reference_info_nce(features["p1"], features["p2"], scale)
    assert terms.l1.item() == pytest.approx(l1, rel=1e-5)
    assert terms.l2.item() == pytest.approx(l2, rel=1e-5)
    assert terms.l3.item() == pytest.approx(l3, rel=1e-5)
    assert terms.total.item() == pytest.approx(0.5 * l1 + l2 + 2.0 * l3, rel=1e-5)


def test_imageless_rows_are_masked_from_l1_only(features: dict[str, np.ndarray]) -> None:
    t = _tensors(features)
    has_image = torch.tensor([True, False, True, True, False])
    # Garbage in the masked rows must not matter.
    t["image"][~has_image] = 1e6
    terms = ParaClipLoss(fixed_temperature=0.5)(
        t["caption"], t["p1"], t["p2"], t["image"], has_image
    )
    keep = has_image.numpy()
    expected_l1 = _reference_info_nce(features["image"][keep], features["p2"][keep], 2.0)
    assert terms.l1.item() == pytest.approx(expected_l1, rel=1e-5)
    assert terms.l2.item() == pytest.approx(
        _reference_info_nce(features["caption"], features["p1"], 2.0), rel=1e-5
    )


def test_no_image_rows_gives_zero_l1_with_gradient() -> None:
    text = torch.randn(3, 4, requires_grad=True)
    loss = symmetric_info_nce(
        torch.zeros(3, 4), text, torch.tensor(1.0), torch.zeros(3, dtype=bool)
    )
    assert loss.item() == 0.0
    loss.backward()
    assert text.grad is not None


def test_learned_scale_receives_gradient(features: dict[str, np.ndarray]) -> None:
    t = _tensors(features)
    log_scale = torch.tensor(np.log(10.0), requires_grad=True)
    terms = ParaClipLoss()(
        t["caption"], t["p1"], t["p2"], t["image"], torch.ones(5, dtype=torch.bool), log_scale.exp()
    )
    terms.total.backward()
    assert log_scale.grad is not None and log_scale.grad.abs().item() > 0
