import math

import torch

from selfsup.losses import barlow_twins_loss
from selfsup.losses.barlow_twins import cross_correlation


def reference_barlow_twins(z1, z2, weight, eps=1e-5):
    """Barlow Twins (Zbontar et al. 2021, eq. 1-2) term by term: standardise each dimension
    over the batch, C_ij = 1/N sum_b zn1_bi zn2_bj, then sum (1 - C_ii)^2 + weight sum C_ij^2."""
    n, d = len(z1), len(z1[0])

    def standardised(z):
        columns = []
        for j in range(d):
            column = [z[b][j] for b in range(n)]
            mean = sum(column) / n
            var = sum((x - mean) ** 2 for x in column) / n
            columns.append([(x - mean) / math.sqrt(var + eps) for x in column])
        return columns  # columns[j][b]

    a, b = standardised(z1.tolist()), standardised(z2.tolist())
    loss = 0.0
    for i in range(d):
        for j in range(d):
            c_ij = sum(a[i][k] * b[j][k] for k in range(n)) / n
            loss += (1 - c_ij) ** 2 if i == j else weight * c_ij ** 2
    return loss


def hadamard_columns(n):
    """n x (n-1) matrix whose columns have mean 0, biased variance 1, and are orthogonal."""
    h = torch.ones(1, 1)
    while len(h) < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)])
    return h[:, 1:]


def test_barlow_twins_matches_formula():
    torch.manual_seed(0)
    z1, z2 = torch.randn(7, 5, dtype=torch.float64), torch.randn(7, 5, dtype=torch.float64)
    for weight in (0.0051, 0.5, 1.0):
        assert abs(barlow_twins_loss(z1, z2, weight).item() - reference_barlow_twins(z1, z2, weight)) < 1e-5


def test_zero_for_identical_decorrelated_standardised_embeddings():
    z = hadamard_columns(8)  # 8 samples, 7 dimensions
    assert torch.allclose(cross_correlation(z, z), torch.eye(7), atol=1e-4)
    assert barlow_twins_loss(z, z).item() < 1e-6
    # the standardisation makes it blind to a per-dimension scale and shift
    scaled = z * torch.arange(1, 8) + 3.0
    assert barlow_twins_loss(scaled, z).item() < 1e-6


def test_off_diagonal_term_penalises_redundant_dimensions():
    z = hadamard_columns(8)
    redundant = torch.cat([z[:, :1], z[:, :1]], dim=1)  # two copies of one dimension
    # C = [[1, 1], [1, 1]]: no on-diagonal loss, two off-diagonal entries of 1
    assert abs(barlow_twins_loss(redundant, redundant, 0.25).item() - 0.5) < 1e-4


def test_gradient_reaches_both_views():
    z1 = torch.randn(6, 4, requires_grad=True)
    z2 = torch.randn(6, 4, requires_grad=True)
    barlow_twins_loss(z1, z2).backward()
    assert z1.grad.abs().sum() > 0 and z2.grad.abs().sum() > 0
