import pytest
import torch

from fkd_hf.labels.kinds import KINDS, quantize, reconstruct, resolve_k


def _probs(*shape, seed=0):
    return torch.softmax(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 3, dim=-1)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_reconstructs_a_distribution(kind):
    probs = _probs(4, 3, 10)
    k = resolve_k(kind, None, 10)
    indices, values = quantize(probs, kind, k)
    dense = reconstruct(indices.to(torch.int16), values.half(), kind, 10)
    assert dense.shape == (4, 3, 10)
    assert dense.dtype == torch.float32
    torch.testing.assert_close(dense.sum(-1), torch.ones(4, 3), atol=1e-5, rtol=0)
    assert (dense >= 0).all()


def test_full_equals_the_stored_distribution():
    probs = _probs(8, 7)
    indices, values = quantize(probs, "full", 7)
    torch.testing.assert_close(reconstruct(indices, values, "full", 7), probs, atol=1e-6, rtol=0)
    dense16 = reconstruct(indices, values.half(), "full", 7)
    torch.testing.assert_close(dense16, probs, atol=1e-3, rtol=0)


def test_marginal_smoothing_keeps_topk_and_spreads_the_rest():
    probs = torch.tensor([[0.5, 0.05, 0.3, 0.1, 0.05]])
    indices, values = quantize(probs, "marginal_smoothing", 2)
    assert indices.tolist() == [[0, 2]]
    dense = reconstruct(indices, values, "marginal_smoothing", 5)
    expected = torch.tensor([[0.5, 0.2 / 3, 0.3, 0.2 / 3, 0.2 / 3]])
    torch.testing.assert_close(dense, expected)


def test_smoothing_hard_and_renorm():
    probs = torch.tensor([[0.1, 0.6, 0.3, 0.0]])
    idx1, val1 = quantize(probs, "smoothing", 1)
    torch.testing.assert_close(
        reconstruct(idx1, val1, "smoothing", 4), torch.tensor([[0.4 / 3, 0.6, 0.4 / 3, 0.4 / 3]])
    )
    torch.testing.assert_close(reconstruct(idx1, val1, "hard", 4), torch.tensor([[0.0, 1.0, 0.0, 0.0]]))
    idx2, val2 = quantize(probs, "marginal_renorm", 2)
    torch.testing.assert_close(reconstruct(idx2, val2, "marginal_renorm", 4), torch.tensor([[0.0, 2 / 3, 1 / 3, 0.0]]))


def test_float16_mass_above_one_is_scaled_back():
    indices = torch.tensor([[0, 1]])
    values = torch.tensor([[0.7, 0.31]], dtype=torch.float16)  # sums past 1 after rounding
    dense = reconstruct(indices, values, "marginal_smoothing", 4)
    assert dense.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert (dense[0, 2:] == 0).all()


def test_resolve_k_checks_ranges_and_kinds():
    assert resolve_k("marginal_smoothing", None, 1000) == 5
    assert resolve_k("full", None, 10) == 10
    assert resolve_k("hard", None, 10) == 1
    with pytest.raises(ValueError, match="between 1 and the class count"):
        resolve_k("marginal_renorm", 11, 10)
    with pytest.raises(ValueError, match="top-1"):
        resolve_k("smoothing", 3, 10)
    with pytest.raises(ValueError, match="Unknown soft-label kind 'soft'"):
        resolve_k("soft", 3, 10)
