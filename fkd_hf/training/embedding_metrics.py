"""How a label-free distilled backbone is judged: top-1 of a weighted k-NN and of a linear probe on its features.

Pure functions on features already extracted (``[N, D]`` float tensors and ``[N]`` int64 labels), computed in float32
on the features' device. The k-NN follows DINO (Caron et al., 2021, ``eval_knn.py``); the probe is a multinomial
logistic regression on standardised features, fitted full-batch by L-BFGS, so that equal inputs give equal results.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["embedding_scores", "knn_top1", "linear_probe_top1"]


def embedding_scores(
    train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor, test_labels: torch.Tensor
) -> dict[str, float]:
    """``knn_top1`` and ``probe_top1`` of the test split, both fitted on the train split (their defaults)."""
    splits = (train_features, train_labels, test_features, test_labels)
    return {"knn_top1": knn_top1(*splits), "probe_top1": linear_probe_top1(*splits)}


def knn_top1(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    k: int = 20,
    temperature: float = 0.07,
    batch_size: int = 1024,
) -> float:
    """Top-1 accuracy (a fraction) of DINO's weighted k-NN classifier.

    Features are L2-normalised; each test feature's ``k`` most cosine-similar train features (``k`` clipped to the
    train set's size) vote for their class with weight ``exp(similarity / temperature)``, and the class with the
    largest sum wins. Test features are scored ``batch_size`` at a time to bound memory.

    >>> train = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> knn_top1(train, torch.tensor([0, 1]), torch.tensor([[2.0, 0.1]]), torch.tensor([0]), k=1)
    1.0
    """
    if k < 1 or temperature <= 0 or batch_size < 1:
        raise ValueError(
            f"k and batch_size must be at least 1 and temperature positive, got k={k}, batch_size={batch_size}, "
            f"temperature={temperature}."
        )
    train_x, train_y, test_x, test_y, num_classes = _checked(train_features, train_labels, test_features, test_labels)
    train_x, test_x = F.normalize(train_x, dim=1), F.normalize(test_x, dim=1)
    k = min(k, len(train_x))
    correct = 0
    for start in range(0, len(test_x), batch_size):
        similarity = test_x[start : start + batch_size] @ train_x.T
        top_similarity, top_index = similarity.topk(k, dim=1)
        votes = torch.zeros(len(similarity), num_classes, device=similarity.device)
        votes.scatter_add_(1, train_y[top_index], (top_similarity / temperature).exp())
        correct += int((votes.argmax(1) == test_y[start : start + batch_size]).sum())
    return correct / len(test_x)


def linear_probe_top1(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    epochs: int = 100,
    weight_decay: float = 1e-4,
    seed: int = 0,
) -> float:
    """Top-1 accuracy (a fraction) on the test split of a linear classifier fitted on the frozen train features.

    Both splits are standardised with the train features' mean and std; the classifier minimises cross-entropy plus
    ``weight_decay / 2 * ||W||^2`` (bias left free) by full-batch L-BFGS with a strong-Wolfe line search for at most
    ``epochs`` iterations, from a small random start drawn from ``torch.Generator().manual_seed(seed)``.
    """
    if epochs < 1 or weight_decay < 0:
        raise ValueError(f"epochs must be at least 1 and weight_decay non-negative, got {epochs} and {weight_decay}.")
    train_x, train_y, test_x, test_y, num_classes = _checked(train_features, train_labels, test_features, test_labels)
    mean, std = train_x.mean(0), train_x.std(0, correction=0).clamp_min(1e-6)
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    generator = torch.Generator().manual_seed(seed)
    weight = (torch.randn(train_x.shape[1], num_classes, generator=generator) * 0.01).to(train_x.device)
    weight.requires_grad_(True)
    bias = torch.zeros(num_classes, device=train_x.device, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=epochs, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(train_x @ weight + bias, train_y) + 0.5 * weight_decay * weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return float(((test_x @ weight + bias).argmax(1) == test_y).float().mean())


def _checked(
    train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor, test_labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Both splits' features as float32 and labels as int64 on the train features' device, and the class count
    (the largest label + 1); raises ``ValueError`` naming what is wrong and how to fix it."""
    splits = {"train": (train_features, train_labels), "test": (test_features, test_labels)}
    for split, (features, labels) in splits.items():
        if features.ndim != 2 or not features.is_floating_point():
            raise ValueError(
                f"{split}_features must be a float tensor [N, D], got {features.dtype} of shape "
                f"{tuple(features.shape)}; pass one feature vector per row (flatten or pool the backbone's output)."
            )
        if labels.ndim != 1 or labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise ValueError(
                f"{split}_labels must be an integer tensor [N], got {labels.dtype} of shape {tuple(labels.shape)}; "
                "pass class indices, e.g. labels.long()."
            )
        if len(features) != len(labels):
            raise ValueError(
                f"{split}_features has {len(features)} rows but {split}_labels has {len(labels)}; pass one label per "
                "feature row, in the same order."
            )
        if len(features) == 0:
            raise ValueError(f"The {split} split is empty; pass at least one {split} feature and label.")
        if not torch.isfinite(features).all():
            raise ValueError(
                f"{split}_features holds NaN or infinite values; check the backbone's output (e.g. fp16 overflow: "
                "extract in float32 or bfloat16) before evaluating."
            )
        if int(labels.min()) < 0:
            raise ValueError(f"{split}_labels holds negative values; labels must be class indices 0..C-1.")
    if train_features.shape[1] != test_features.shape[1]:
        raise ValueError(
            f"train_features have {train_features.shape[1]} dimensions but test_features {test_features.shape[1]}; "
            "extract both splits with the same backbone and pooling."
        )
    device = train_features.device
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    return (
        train_features.to(device, torch.float32),
        train_labels.to(device, torch.int64),
        test_features.to(device, torch.float32),
        test_labels.to(device, torch.int64),
        num_classes,
    )
