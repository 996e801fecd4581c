import numpy as np
import pytest
import torch

from selfsup.losses import whiten, wmse_loss


def test_whitened_batch_has_zero_mean_and_identity_covariance():
    torch.manual_seed(0)
    z = torch.randn(40, 6, dtype=torch.float64) @ torch.randn(6, 6, dtype=torch.float64) + 3.0
    w = whiten(z)
    assert torch.allclose(w.mean(dim=0), torch.zeros(6, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(w.T @ w / (len(w) - 1), torch.eye(6, dtype=torch.float64), atol=1e-10)


def test_whitening_is_the_inverse_cholesky_factor():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(20, 4))
    centred = z - z.mean(axis=0)
    factor = np.linalg.cholesky(np.cov(z, rowvar=False))  # independent: numpy, ddof 1
    expected = (np.linalg.inv(factor) @ centred.T).T
    assert np.allclose(whiten(torch.from_numpy(z)).numpy(), expected, atol=1e-10)


def reference_loss(views, order, size):
    """By loops: whiten each view within each sub-batch of the permutation, then the mean
    squared distance of the normalised whitened embeddings, averaged over view pairs."""
    n = len(views[0])
    whitened = [np.zeros_like(v) for v in views]
    for chunk in np.array_split(order, n // size):
        for v, w in zip(views, whitened):
            part = v[chunk]
            centred = part - part.mean(axis=0)
            w[chunk] = (np.linalg.inv(np.linalg.cholesky(np.cov(part, rowvar=False))) @ centred.T).T
    losses = []
    for i in range(len(views)):
        for j in range(i + 1, len(views)):
            a = whitened[i] / np.linalg.norm(whitened[i], axis=1, keepdims=True)
            b = whitened[j] / np.linalg.norm(whitened[j], axis=1, keepdims=True)
            losses.append(((a - b) ** 2).sum(axis=1).mean())
    return float(np.mean(losses))


@pytest.mark.parametrize("num_views, n, size", [(2, 24, 8), (4, 24, 12), (2, 25, 8)])
def test_loss_matches_formula(num_views, n, size):
    torch.manual_seed(num_views)
    views = [torch.randn(n, 5, dtype=torch.float64) for _ in range(num_views)]
    loss = wmse_loss(views, size, torch.Generator().manual_seed(7))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(7)).numpy()
    assert loss.item() == pytest.approx(reference_loss([v.numpy() for v in views], order, size), abs=1e-10)


def test_identical_views_cost_nothing_and_scale_does_not_matter():
    torch.manual_seed(0)
    z1, z2 = torch.randn(32, 4, dtype=torch.float64), torch.randn(32, 4, dtype=torch.float64)
    assert wmse_loss([z1, z1], 16, torch.Generator().manual_seed(0)).item() == pytest.approx(0, abs=1e-12)
    # whitening removes any affine map of the embeddings: the loss cannot be lowered by shrinking them
    a = wmse_loss([z1, z2], 16, torch.Generator().manual_seed(0))
    b = wmse_loss([5 * z1 + 1, 0.1 * z2 - 2], 16, torch.Generator().manual_seed(0))
    assert a.item() == pytest.approx(b.item(), abs=1e-9)


def test_collapse_is_not_a_minimum():
    """A near-collapsed embedding (all samples almost equal) is whitened back to spread
    out, so the loss stays that of unrelated views, not 0."""
    torch.manual_seed(0)
    base = torch.randn(1, 4, dtype=torch.float64)
    z1 = base + 1e-4 * torch.randn(64, 4, dtype=torch.float64)
    z2 = base + 1e-4 * torch.randn(64, 4, dtype=torch.float64)
    assert wmse_loss([z1, z2], 64, torch.Generator().manual_seed(0)).item() > 1.0


def test_sub_batch_must_exceed_embedding_size():
    with pytest.raises(ValueError, match="must exceed the embedding size 8"):
        wmse_loss([torch.randn(8, 8), torch.randn(8, 8)], 128)
