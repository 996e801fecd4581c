"""TS2Vec's hierarchical contrastive loss against a direct, loop-by-loop reading of its
definition (Yue et al. 2022, eqs. 1-3 and Algorithm 1)."""

import math

import torch
import torch.nn.functional as F

from selfsup.losses.ts2vec import (hierarchical_contrastive_loss, instance_contrastive_loss,
                                   temporal_contrastive_loss)


def naive_term(z1, z2, i, t, over_series: bool) -> float:
    """-log p(positive) for anchor r_{i,t} of view 1 and for r'_{i,t} of view 2, averaged.
    Candidates: every representation of step t (instance-wise) or of series i (temporal),
    in both views, except the anchor itself."""
    B, T, _ = z1.shape
    losses = []
    for anchor_view, other_view in ((z1, z2), (z2, z1)):
        anchor = anchor_view[i, t]
        positive = other_view[i, t] @ anchor
        if over_series:
            others = [anchor_view[j, t] @ anchor for j in range(B) if j != i] + [other_view[j, t] @ anchor for j in range(B)]
        else:
            others = [anchor_view[i, s] @ anchor for s in range(T) if s != t] + [other_view[i, s] @ anchor for s in range(T)]
        losses.append(-(positive - torch.logsumexp(torch.stack(others), 0)).item())
    return sum(losses) / 2


def test_instance_and_temporal_terms_match_their_definition():
    torch.manual_seed(0)
    z1, z2 = torch.randn(4, 5, 3, dtype=torch.float64), torch.randn(4, 5, 3, dtype=torch.float64)
    pairs = [(i, t) for i in range(4) for t in range(5)]
    instance = sum(naive_term(z1, z2, i, t, True) for i, t in pairs) / len(pairs)
    temporal = sum(naive_term(z1, z2, i, t, False) for i, t in pairs) / len(pairs)
    assert math.isclose(instance_contrastive_loss(z1, z2).item(), instance, rel_tol=1e-9)
    assert math.isclose(temporal_contrastive_loss(z1, z2).item(), temporal, rel_tol=1e-9)


def test_hierarchy_pools_by_two_until_one_step_and_averages_the_levels():
    torch.manual_seed(1)
    z1, z2 = torch.randn(3, 5, 4, dtype=torch.float64), torch.randn(3, 5, 4, dtype=torch.float64)
    alpha = 0.3
    # T = 5 -> 2 -> 1: two levels with both terms, the last with the instance term only
    expected, a, b = 0.0, z1, z2
    for _ in range(2):
        expected += alpha * instance_contrastive_loss(a, b) + (1 - alpha) * temporal_contrastive_loss(a, b)
        a, b = (F.max_pool1d(z.transpose(1, 2), 2).transpose(1, 2) for z in (a, b))
    assert a.shape[1] == 1
    expected = (expected + alpha * instance_contrastive_loss(a, b)) / 3
    assert torch.allclose(hierarchical_contrastive_loss(z1, z2, alpha), expected)


def test_identical_well_separated_contexts_give_a_small_loss():
    basis = torch.eye(8, dtype=torch.float64)[:, None, :] * 30  # 8 series, 1 step, orthogonal
    z = basis.expand(8, 1, 8)
    assert hierarchical_contrastive_loss(z, z.clone()).item() < 1e-6
