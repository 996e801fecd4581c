import math

import pytest
import torch

from selfsup.losses import sinkhorn, swav_loss


def reference_sinkhorn(scores, epsilon, iterations):
    """Sinkhorn-Knopp as in SwAV (Caron et al. 2020, sec. 3.1), entry by entry on lists:
    P = exp(scores / eps) as K x B, scaled to sum 1; then, per iteration, every prototype
    row to total 1/K and every sample column to total 1/B; codes are the columns times B."""
    n, k = len(scores), len(scores[0])
    q = [[math.exp(scores[b][j] / epsilon) for b in range(n)] for j in range(k)]
    total = sum(sum(row) for row in q)
    q = [[x / total for x in row] for row in q]
    for _ in range(iterations):
        for j in range(k):
            row = sum(q[j])
            q[j] = [x / row / k for x in q[j]]
        for b in range(n):
            column = sum(q[j][b] for j in range(k))
            for j in range(k):
                q[j][b] = q[j][b] / column / n
    return [[q[j][b] * n for j in range(k)] for b in range(n)]


def reference_swav(scores, codes, temperature):
    """1/|S| sum_s 1/(V-1) sum_{t != s} mean_b -sum_k q_s[b,k] log softmax(scores_t[b] / tau)_k."""
    total = 0.0
    for s, q in enumerate(codes):
        per_view = []
        for t, view in enumerate(scores):
            if t == s:
                continue
            terms = []
            for b, row in enumerate(view):
                log_norm = math.log(sum(math.exp(x / temperature) for x in row))
                terms.append(-sum(q[b][j] * (row[j] / temperature - log_norm) for j in range(len(row))))
            per_view.append(sum(terms) / len(terms))
        total += sum(per_view) / len(per_view)
    return total / len(codes)


def test_sinkhorn_matches_the_formula():
    torch.manual_seed(0)
    scores = torch.randn(6, 4, dtype=torch.float64) * 0.5
    for epsilon, iterations in ((0.05, 1), (0.05, 3), (0.3, 3)):
        codes = sinkhorn(scores, epsilon, iterations)
        expected = reference_sinkhorn(scores.tolist(), epsilon, iterations)
        assert codes.dtype == torch.float64
        assert torch.allclose(codes, torch.tensor(expected, dtype=torch.float64), rtol=1e-9, atol=1e-12)
    assert sinkhorn(scores.half(), 0.05, 3).dtype == torch.float32  # computed in float32 at least


def test_codes_sum_to_one_and_prototypes_share_the_batch():
    torch.manual_seed(1)
    batch, prototypes = 12, 4
    scores = torch.nn.functional.normalize(torch.randn(batch, 8), dim=1) @ \
        torch.nn.functional.normalize(torch.randn(prototypes, 8), dim=1).T
    codes = sinkhorn(scores, 0.05, 3)
    assert codes.shape == (batch, prototypes) and (codes >= 0).all()
    assert torch.allclose(codes.sum(dim=1), torch.ones(batch), atol=1e-5)  # each sample's code
    # each prototype gets B/K of the batch: approached in 3 iterations, exact as they go on
    start = torch.softmax(scores / 0.05, dim=1).sum(dim=0)
    assert (codes.sum(dim=0) - batch / prototypes).abs().max() < (start - batch / prototypes).abs().max()
    converged = sinkhorn(scores, 0.05, 500)
    assert torch.allclose(converged.sum(dim=0), torch.full((prototypes,), batch / prototypes), atol=1e-3)
    assert torch.allclose(converged.sum(dim=1), torch.ones(batch), atol=1e-5)


def test_equipartition_splits_a_batch_that_prefers_one_prototype():
    # every sample prefers prototype 0, but the codes still spread the batch evenly
    scores = torch.tensor([[0.9, 0.1, 0.0]] * 3 + [[0.9, 0.0, 0.1]] * 3)
    codes = sinkhorn(scores, 0.05, 200)
    assert torch.allclose(codes.sum(dim=0), torch.full((3,), 2.0), atol=1e-3)
    assert (codes[:3, 1] > codes[:3, 2]).all() and (codes[3:, 2] > codes[3:, 1]).all()


def test_sinkhorn_is_a_diagonal_scaling_of_exp_scores():
    # Q = diag(u) exp(S / eps) diag(v): log Q - S / eps is a sum of a sample and a prototype term
    torch.manual_seed(2)
    scores = torch.randn(5, 3, dtype=torch.float64) * 0.3
    residual = torch.log(sinkhorn(scores, 0.05, 3)) - scores / 0.05
    interaction = residual - residual[:, :1] - residual[:1, :] + residual[0, 0]
    assert interaction.abs().max() < 1e-9
    # so a constant added to one prototype's scores is undone by the first row scaling, and
    # one added to a sample's scores is undone at the fixed point
    per_prototype = scores + torch.tensor([[0.0, 0.3, -0.2]], dtype=torch.float64)
    assert torch.allclose(sinkhorn(per_prototype, 0.05, 3), sinkhorn(scores, 0.05, 3), atol=1e-9)
    per_sample = scores + torch.arange(5, dtype=torch.float64)[:, None] * 0.2
    assert torch.allclose(sinkhorn(per_sample, 0.05, 2000), sinkhorn(scores, 0.05, 2000), atol=1e-6)
    assert not torch.allclose(sinkhorn(per_sample, 0.05, 3), sinkhorn(scores, 0.05, 3), atol=1e-3)


def test_sinkhorn_stays_finite_for_large_scores_and_has_no_gradient():
    scores = torch.tensor([[50.0, -50.0], [-50.0, 50.0]], requires_grad=True)
    codes = sinkhorn(scores, 0.05, 3)
    assert torch.isfinite(codes).all() and not codes.requires_grad
    assert torch.allclose(codes, torch.eye(2), atol=1e-6)


def test_swav_loss_matches_the_formula():
    torch.manual_seed(3)
    scores = [torch.randn(4, 5) for _ in range(4)]  # 2 global and 2 local views
    codes = [sinkhorn(s, 0.05, 3) for s in scores[:2]]
    for temperature in (0.1, 0.5):
        expected = reference_swav([s.tolist() for s in scores], [c.tolist() for c in codes], temperature)
        assert abs(swav_loss(scores, codes, temperature).item() - expected) < 1e-4


def test_swav_loss_hand_case_and_swapped_prediction():
    # uniform predictions cost log K whatever the codes
    scores, codes = [torch.zeros(3, 4)] * 3, [torch.eye(4)[:3]] * 2
    assert abs(swav_loss(scores, codes).item() - math.log(4)) < 1e-6
    # two views: each view's code is predicted only from the other view
    a, b = torch.randn(3, 4), torch.randn(3, 4)
    qa, qb = torch.softmax(torch.randn(3, 4), 1), torch.softmax(torch.randn(3, 4), 1)
    cross = lambda q, s: -(q * torch.log_softmax(s / 0.1, dim=1)).sum(1).mean()
    assert torch.allclose(swav_loss([a, b], [qa, qb]), (cross(qa, b) + cross(qb, a)) / 2, atol=1e-6)


def test_gradient_reaches_scores_not_codes():
    scores = [torch.randn(4, 3, requires_grad=True) for _ in range(3)]
    codes = [torch.softmax(torch.randn(4, 3), 1).requires_grad_(True) for _ in range(2)]
    swav_loss(scores, codes).backward()
    assert all(s.grad is not None for s in scores) and all(c.grad is None for c in codes)


def test_swav_loss_checks_its_arguments():
    with pytest.raises(ValueError, match="views"):
        swav_loss([torch.zeros(2, 3)], [torch.zeros(2, 3)])
