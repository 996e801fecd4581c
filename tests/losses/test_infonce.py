import math

import torch

from selfsup.losses import batch_info_nce, info_nce


def unit(v):
    norm = math.sqrt(sum(x * x for x in v))
    return [x / norm for x in v]


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def reference_info_nce(q, k, queue, t):
    """MoCo eq. 1 term by term: -log exp(q.k+/t) / (exp(q.k+/t) + sum_queue exp(q.k-/t))."""
    total = 0.0
    for q_i, k_i in zip(q.tolist(), k.tolist()):
        q_i, k_i = unit(q_i), unit(k_i)
        positive = math.exp(dot(q_i, k_i) / t)
        negatives = sum(math.exp(dot(q_i, unit(n)) / t) for n in queue.tolist())
        total += -math.log(positive / (positive + negatives))
    return total / len(q)


def reference_batch_info_nce(anchors, candidates, t):
    """-log exp(a_i.c_i/t) / sum_k exp(a_i.c_k/t), averaged over i."""
    a = [unit(x) for x in anchors.tolist()]
    c = [unit(x) for x in candidates.tolist()]
    total = 0.0
    for i in range(len(a)):
        total += -math.log(math.exp(dot(a[i], c[i]) / t) / sum(math.exp(dot(a[i], c_k) / t) for c_k in c))
    return total / len(a)


def test_info_nce_matches_formula():
    torch.manual_seed(0)
    q, k, queue = torch.randn(5, 4), torch.randn(5, 4), torch.randn(11, 4)
    for t in (0.07, 0.2, 1.0):
        assert abs(info_nce(q, k, queue, t).item() - reference_info_nce(q, k, queue, t)) < 1e-5


def test_info_nce_hand_case():
    # query equal to its key, two orthogonal negatives: -log(e^{1/t} / (e^{1/t} + 2))
    q = torch.tensor([[1.0, 0.0, 0.0]])
    queue = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 5.0]])
    expected = -math.log(math.exp(5) / (math.exp(5) + 2))
    assert abs(info_nce(q, 2 * q, queue, 0.2).item() - expected) < 1e-5


def test_batch_info_nce_matches_formula():
    torch.manual_seed(1)
    anchors, candidates = torch.randn(6, 5), torch.randn(6, 5)
    for t in (0.1, 0.2, 1.0):
        assert abs(batch_info_nce(anchors, candidates, t).item()
                   - reference_batch_info_nce(anchors, candidates, t)) < 1e-5


def test_batch_info_nce_is_asymmetric_in_its_roles():
    # the softmax runs over candidates for a fixed anchor, not the other way round
    torch.manual_seed(2)
    a, c = torch.randn(5, 3), torch.randn(5, 3)
    assert abs(batch_info_nce(a, c, 0.5).item() - batch_info_nce(c, a, 0.5).item()) > 1e-4
