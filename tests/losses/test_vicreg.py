import math

import torch

from selfsup.losses import vicreg_loss
from selfsup.losses.vicreg import covariance, invariance, variance


def reference_terms(z):
    """Per-dimension (unbiased) variance hinge and off-diagonal covariance of VICReg, by loops."""
    n, d = len(z), len(z[0])
    means = [sum(z[b][j] for b in range(n)) / n for j in range(d)]
    cov = [[sum((z[b][i] - means[i]) * (z[b][j] - means[j]) for b in range(n)) / (n - 1)
            for j in range(d)] for i in range(d)]
    v = sum(max(0.0, 1 - math.sqrt(cov[j][j] + 1e-4)) for j in range(d)) / d
    c = sum(cov[i][j] ** 2 for i in range(d) for j in range(d) if i != j) / d
    return v, c


def reference_vicreg(z1, z2, lam=25.0, mu=25.0, nu=1.0):
    a, b = z1.tolist(), z2.tolist()
    n, d = len(a), len(a[0])
    s = sum((a[i][j] - b[i][j]) ** 2 for i in range(n) for j in range(d)) / (n * d)
    (v1, c1), (v2, c2) = reference_terms(a), reference_terms(b)
    return lam * s + mu * (v1 + v2) / 2 + nu * (c1 + c2)


def main_vicreg_loss(x, y, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0):
    """The loss as the authors' main_vicreg.py (VICReg.forward) computes it."""
    batch_size, num_features = x.shape
    repr_loss = torch.nn.functional.mse_loss(x, y)
    x, y = x - x.mean(dim=0), y - y.mean(dim=0)
    std_x, std_y = torch.sqrt(x.var(dim=0) + 0.0001), torch.sqrt(y.var(dim=0) + 0.0001)
    std_loss = torch.mean(torch.relu(1 - std_x)) / 2 + torch.mean(torch.relu(1 - std_y)) / 2
    cov_x, cov_y = x.T @ x / (batch_size - 1), y.T @ y / (batch_size - 1)
    off = ~torch.eye(num_features, dtype=torch.bool)
    cov_loss = (cov_x[off].pow(2).sum() / num_features + cov_y[off].pow(2).sum() / num_features)
    return sim_coeff * repr_loss + std_coeff * std_loss + cov_coeff * cov_loss


def test_vicreg_matches_the_authors_code():
    torch.manual_seed(0)
    z1, z2 = 0.5 * torch.randn(16, 8, dtype=torch.float64), 0.5 * torch.randn(16, 8, dtype=torch.float64) + 1
    assert variance(z1).item() > 0.1  # the variance hinge is active, so its weight shows
    assert abs(vicreg_loss(z1, z2).item() - main_vicreg_loss(z1, z2).item()) < 1e-8
    assert abs(vicreg_loss(z1, z2, 1.0, 2.0, 3.0).item()
               - main_vicreg_loss(z1, z2, 1.0, 2.0, 3.0).item()) < 1e-8
    # a collapsed pair costs mu (1 - sqrt(eps)), not twice that
    z = torch.ones(16, 8, dtype=torch.float64)
    assert abs(vicreg_loss(z, z).item() - 25 * (1 - 1e-2)) < 1e-8


def test_vicreg_matches_formula():
    torch.manual_seed(0)
    # scale 0.7 so some dimensions have std below 1 and the hinge is active
    z1, z2 = 0.7 * torch.randn(9, 6, dtype=torch.float64), 0.7 * torch.randn(9, 6, dtype=torch.float64)
    assert abs(vicreg_loss(z1, z2).item() - reference_vicreg(z1, z2)) < 1e-5
    assert abs(vicreg_loss(z1, z2, 1.0, 2.0, 3.0).item() - reference_vicreg(z1, z2, 1.0, 2.0, 3.0)) < 1e-5
    v, c = reference_terms(z1.tolist())
    assert 0 < v and abs(variance(z1).item() - v) < 1e-6
    assert abs(covariance(z1).item() - c) < 1e-6


def test_variance_term_is_zero_when_every_std_is_at_least_one():
    torch.manual_seed(0)
    z = torch.randn(64, 8)
    z = (z - z.mean(0)) / z.std(0)  # std exactly 1 in every dimension
    assert variance(z).item() == 0.0
    assert variance(3 * z).item() == 0.0
    # and positive for a collapsed (constant) embedding: 1 - sqrt(eps) in every dimension
    assert abs(variance(torch.ones(64, 8)).item() - (1 - math.sqrt(1e-4))) < 1e-6


def test_covariance_and_invariance_vanish_for_decorrelated_identical_views():
    h = torch.ones(1, 1)
    while len(h) < 8:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)])
    z = 2 * h[:, 1:]  # orthogonal zero-mean columns, std 2
    assert covariance(z).item() < 1e-10
    assert invariance(z, z).item() == 0.0
    assert vicreg_loss(z, z).item() < 1e-6
