"""k-NN and linear-probe top-1 on synthetic features: clusters, random labels and hand-made points."""

import pytest
import torch

from fkd_hf.training.embedding_metrics import knn_top1, linear_probe_top1


def _clusters(num_classes: int, dim: int, per_class: int, noise: float, seed: int = 0):
    """Train and test splits of Gaussian clusters around ``num_classes`` random centres (same centres in both)."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_classes, dim, generator=generator)

    def split():
        labels = torch.arange(num_classes).repeat_interleave(per_class)
        return centres[labels] + noise * torch.randn(len(labels), dim, generator=generator), labels

    return (*split(), *split())


def test_separable_clusters_score_perfectly_in_any_float_dtype():
    splits = _clusters(num_classes=8, dim=32, per_class=40, noise=0.1)
    assert knn_top1(*splits) == 1.0
    assert linear_probe_top1(*splits) == 1.0
    train_x, train_y, test_x, test_y = splits
    assert knn_top1(train_x.bfloat16(), train_y, test_x.half(), test_y) == 1.0
    assert linear_probe_top1(train_x.double(), train_y, test_x.bfloat16(), test_y) == 1.0


def test_random_labels_score_near_chance():
    generator = torch.Generator().manual_seed(1)
    train_x, test_x = torch.randn(1000, 16, generator=generator), torch.randn(1000, 16, generator=generator)
    train_y, test_y = (
        torch.randint(0, 10, (1000,), generator=generator),
        torch.randint(0, 10, (1000,), generator=generator),
    )
    # chance is 0.1; the binomial standard deviation over 1000 test points is about 0.01
    assert 0.06 < knn_top1(train_x, train_y, test_x, test_y) < 0.14
    assert 0.06 < linear_probe_top1(train_x, train_y, test_x, test_y) < 0.14


def test_knn_with_k_1_is_the_nearest_neighbour_by_cosine():
    # For (1, 0), (1, 0.6) is nearer in Euclidean distance but (5, 2) is nearer in angle.
    train_x = torch.tensor([[5.0, 2.0], [1.0, 0.6], [-1.0, 0.2], [0.0, -3.0]])
    train_y = torch.tensor([0, 1, 2, 3])
    test_x = torch.tensor([[1.0, 0.0], [-0.5, -1.0], [0.1, 0.1]])
    cosine = torch.nn.functional.normalize(test_x, dim=1) @ torch.nn.functional.normalize(train_x, dim=1).T
    expected = train_y[cosine.argmax(1)]
    assert expected.tolist() == [0, 3, 1]
    assert torch.cdist(test_x[:1], train_x).argmin() == 1  # Euclidean would have picked class 1
    for label in range(4):
        assert knn_top1(train_x, train_y, test_x, torch.full((3,), label), k=1) == (expected == label).float().mean()


def test_closer_neighbours_outvote_a_farther_majority():
    # Of the test point's 3 neighbours, the nearest (similarity 1.0) is class 0 and two farther ones (similarity 0.8)
    # are class 1: at temperature 0.07, exp(1 / 0.07) > 2 exp(0.8 / 0.07), so class 0 wins; at a high temperature the
    # votes are nearly equal and the majority (class 1) wins.
    train_x = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.8, -0.6], [-1.0, 0.0]])
    train_y = torch.tensor([0, 1, 1, 2])
    test_x, test_y = torch.tensor([[3.0, 0.0]]), torch.tensor([0])
    assert knn_top1(train_x, train_y, test_x, test_y, k=3, temperature=0.07) == 1.0
    assert knn_top1(train_x, train_y, test_x, test_y, k=3, temperature=100.0) == 0.0
    # k larger than the train set is clipped: the class-2 point joins with a negligible vote
    assert knn_top1(train_x, train_y, test_x, test_y, k=50) == 1.0


def test_knn_batching_gives_the_same_result():
    splits = _clusters(num_classes=5, dim=16, per_class=60, noise=1.0, seed=2)
    whole = knn_top1(*splits, batch_size=10_000)
    assert 0.3 < whole < 1.0  # a case with errors, so that a batching slip would show
    assert knn_top1(*splits, batch_size=7) == whole
    assert knn_top1(*splits, batch_size=1) == whole


def test_probe_is_scale_invariant_and_deterministic():
    splits = _clusters(num_classes=5, dim=16, per_class=60, noise=1.0, seed=3)
    accuracy = linear_probe_top1(*splits)
    assert 0.3 < accuracy < 1.0
    assert linear_probe_top1(*splits) == accuracy
    train_x, train_y, test_x, test_y = splits
    assert linear_probe_top1(train_x * 1000, train_y, test_x * 1000, test_y) == pytest.approx(accuracy, abs=0.01)
    # each feature on its own scale, from 1e-3 to 1e3: standardisation undoes it
    scales = torch.logspace(-3, 3, train_x.shape[1])
    assert linear_probe_top1(train_x * scales, train_y, test_x * scales, test_y) == pytest.approx(accuracy, abs=0.01)
    # a constant feature (std 0) is harmless
    constant = torch.full((len(train_x), 1), 5.0), torch.full((len(test_x), 1), 5.0)
    with_constant = torch.cat([train_x, constant[0]], 1), train_y, torch.cat([test_x, constant[1]], 1), test_y
    assert linear_probe_top1(*with_constant) == pytest.approx(accuracy, abs=0.01)


@pytest.mark.parametrize("metric", [knn_top1, linear_probe_top1])
def test_bad_input_is_a_clear_value_error(metric):
    x, y = torch.randn(6, 4), torch.tensor([0, 1, 0, 1, 0, 1])
    with pytest.raises(ValueError, match="6 rows but train_labels has 5"):
        metric(x, y[:5], x, y)
    with pytest.raises(ValueError, match="test split is empty"):
        metric(x, y, x[:0], y[:0])
    for bad in (float("nan"), float("inf")):
        broken = x.clone()
        broken[2, 1] = bad
        with pytest.raises(ValueError, match="test_features holds NaN or infinite"):
            metric(x, y, broken, y)
    with pytest.raises(ValueError, match="4 dimensions but test_features 3"):
        metric(x, y, x[:, :3], y)
    with pytest.raises(ValueError, match=r"float tensor \[N, D\]"):
        metric(x.flatten(), y, x, y)
    with pytest.raises(ValueError, match="integer tensor"):
        metric(x, y.float(), x, y)
    with pytest.raises(ValueError, match="negative"):
        metric(x, y - 1, x, y)


def test_bad_settings_are_value_errors():
    x, y = torch.randn(4, 2), torch.tensor([0, 1, 0, 1])
    with pytest.raises(ValueError, match="k=0"):
        knn_top1(x, y, x, y, k=0)
    with pytest.raises(ValueError, match="temperature=0"):
        knn_top1(x, y, x, y, temperature=0)
    with pytest.raises(ValueError, match="epochs"):
        linear_probe_top1(x, y, x, y, epochs=0)
