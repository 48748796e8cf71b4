"""FKD's loss and Mixup/CutMix, on random tensors."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fkd_hf.labels.kinds import reconstruct
from fkd_hf.training.loss import mix_crops, sample_mix, soft_cross_entropy


def _distribution(n: int, c: int, seed: int = 0) -> torch.Tensor:
    return torch.softmax(torch.randn(n, c, generator=torch.Generator().manual_seed(seed)) * 3, dim=-1)


def test_soft_cross_entropy_shapes_and_reductions():
    logits, targets = torch.randn(6, 5), _distribution(6, 5)
    per_crop = soft_cross_entropy(logits, targets, reduction="none")
    assert per_crop.shape == (6,)
    assert torch.allclose(soft_cross_entropy(logits, targets), per_crop.mean())
    assert torch.allclose(soft_cross_entropy(logits, targets, reduction="sum"), per_crop.sum())
    with pytest.raises(ValueError, match="reduction"):
        soft_cross_entropy(logits, targets, reduction="max")


def test_soft_cross_entropy_is_target_entropy_at_the_target():
    targets = _distribution(4, 7)
    entropy = -(targets * targets.log()).sum(-1)
    assert torch.allclose(soft_cross_entropy(targets.log(), targets, reduction="none"), entropy, atol=1e-6)


def test_soft_cross_entropy_on_one_hot_is_cross_entropy():
    logits, labels = torch.randn(8, 10), torch.randint(0, 10, (8,))
    one_hot = F.one_hot(labels, 10).float()
    assert torch.allclose(soft_cross_entropy(logits, one_hot), F.cross_entropy(logits, labels), atol=1e-6)
    # FKD's temperature divides the student's logits, without a T^2 factor
    assert torch.allclose(soft_cross_entropy(logits, one_hot, 4.0), F.cross_entropy(logits / 4, labels), atol=1e-6)


def test_loss_from_stored_top_k_matches_a_dense_reference():
    """The training path (reconstruct on stored top-k, then the loss) against targets built by hand, FKD-style."""
    num_classes, k = 10, 3
    probs = _distribution(5, num_classes, seed=1)
    values, indices = probs.topk(k, dim=-1)
    values = values.half()
    logits = torch.randn(5, num_classes)
    reference = []
    for row in range(5):
        kept = values[row].float()
        target = torch.full((num_classes,), float((1 - kept.sum()) / (num_classes - k)))
        target[indices[row]] = kept
        reference.append(-(target * torch.log_softmax(logits[row], -1)).sum())
    targets = reconstruct(indices.to(torch.int16), values, "marginal_smoothing", num_classes)
    assert torch.allclose(soft_cross_entropy(logits, targets), torch.stack(reference).mean(), atol=1e-5)


def test_no_mixing_when_off_or_not_drawn():
    rng = np.random.default_rng(0)
    assert sample_mix(rng, 0.0, 0.0, 1.0, 8, 8) is None
    assert sample_mix(rng, 0.8, 1.0, 0.0, 8, 8) is None


def test_mixup_blends_crops_and_targets_which_stay_distributions():
    pixels, targets = torch.randn(6, 3, 8, 8), _distribution(6, 5)
    lam, box = sample_mix(np.random.default_rng(0), 0.8, 0.0, 1.0, 8, 8)
    assert box is None and 0 <= lam <= 1
    mixed, mixed_targets = mix_crops(pixels, targets, lam, box)
    assert torch.allclose(mixed, lam * pixels + (1 - lam) * pixels.flip(0))
    assert torch.allclose(mixed_targets, lam * targets + (1 - lam) * targets.flip(0))
    assert torch.allclose(mixed_targets.sum(-1), torch.ones(6))


def test_cutmix_pastes_the_partner_box_and_weights_targets_by_area():
    pixels, targets = torch.randn(4, 3, 16, 20), _distribution(4, 5)
    draws = [sample_mix(np.random.default_rng(seed), 0.0, 1.0, 1.0, 16, 20) for seed in range(20)]
    lam, (top, left, bottom, right) = next(d for d in draws if d[1][2] > d[1][0] and d[1][3] > d[1][1])
    mixed, mixed_targets = mix_crops(pixels, targets, lam, (top, left, bottom, right))
    inside = torch.zeros(16, 20, dtype=torch.bool)
    inside[top:bottom, left:right] = True
    assert torch.equal(mixed[..., inside], pixels.flip(0)[..., inside])
    assert torch.equal(mixed[..., ~inside], pixels[..., ~inside])
    assert lam == pytest.approx(1 - inside.float().mean().item())
    assert torch.allclose(mixed_targets.sum(-1), torch.ones(4))


def test_mixing_draws_are_reproducible_and_both_kinds_occur():
    draws = [sample_mix(np.random.default_rng([7, i]), 0.8, 1.0, 1.0, 16, 16) for i in range(40)]
    assert draws == [sample_mix(np.random.default_rng([7, i]), 0.8, 1.0, 1.0, 16, 16) for i in range(40)]
    assert {d[1] is None for d in draws} == {True, False}
