import math

import torch

from selfsup.losses import nt_xent


def reference_nt_xent(z1, z2, temperature):
    """NT-Xent written out term by term from the SimCLR paper (eq. 1 and algorithm 1)."""
    z = torch.cat([z1, z2])
    z = z / z.norm(dim=1, keepdim=True)
    n = len(z1)
    total = 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        numerator = math.exp(float(z[i] @ z[j]) / temperature)
        denominator = sum(math.exp(float(z[i] @ z[k]) / temperature) for k in range(2 * n) if k != i)
        total += -math.log(numerator / denominator)
    return total / (2 * n)


def test_nt_xent_matches_formula():
    torch.manual_seed(0)
    z1, z2 = torch.randn(5, 7), torch.randn(5, 7)
    for temperature in (0.1, 0.5, 1.0):
        assert abs(nt_xent(z1, z2, temperature).item() - reference_nt_xent(z1, z2, temperature)) < 1e-5


def test_nt_xent_hand_case():
    # two samples, orthogonal unit embeddings, identical views: s(i,pair)=1/t, others 0 except self
    z = torch.eye(2)
    t = 0.5
    # for each anchor: candidates are its pair (cos 1) and the other sample's two views (cos 0)
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 2))
    assert abs(nt_xent(z, z, t).item() - expected) < 1e-6


def test_nt_xent_excludes_self_similarity():
    # if the anchor itself were counted, the loss would be larger than the reference
    torch.manual_seed(1)
    z1 = torch.randn(4, 3)
    z2 = z1 + 0.01 * torch.randn(4, 3)
    assert abs(nt_xent(z1, z2, 0.2).item() - reference_nt_xent(z1, z2, 0.2)) < 1e-5


def test_nt_xent_is_scale_invariant_and_differentiable():
    z1 = torch.randn(6, 4, requires_grad=True)
    z2 = torch.randn(6, 4)
    loss = nt_xent(z1, z2, 0.5)
    loss.backward()
    assert torch.isfinite(z1.grad).all() and z1.grad.abs().sum() > 0
    assert abs(nt_xent(3 * z1, z2, 0.5).item() - loss.item()) < 1e-5
