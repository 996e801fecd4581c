import math

import torch

from selfsup.losses import negative_cosine


def reference_negative_cosine(p, z):
    """D(p, z) = -p/|p| . z/|z| (SimSiam eq. 1), averaged over the batch, term by term."""
    total = 0.0
    for p_i, z_i in zip(p.tolist(), z.tolist()):
        dot = sum(a * b for a, b in zip(p_i, z_i))
        total += -dot / (math.sqrt(sum(a * a for a in p_i)) * math.sqrt(sum(b * b for b in z_i)))
    return total / len(p)


def test_negative_cosine_matches_formula():
    torch.manual_seed(0)
    p, z = torch.randn(6, 5), torch.randn(6, 5)
    assert abs(negative_cosine(p, z).item() - reference_negative_cosine(p, z)) < 1e-5


def test_negative_cosine_hand_cases():
    assert negative_cosine(torch.tensor([[1.0, 0.0]]), torch.tensor([[3.0, 0.0]])).item() == -1.0
    assert negative_cosine(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])).item() == 0.0
    assert abs(negative_cosine(torch.tensor([[1.0, 1.0]]), torch.tensor([[-2.0, -2.0]])).item() - 1.0) < 1e-6


def test_target_is_a_constant():
    p = torch.randn(4, 3, requires_grad=True)
    z = torch.randn(4, 3, requires_grad=True)
    negative_cosine(p, z).backward()
    assert p.grad is not None and p.grad.abs().sum() > 0
    assert z.grad is None
