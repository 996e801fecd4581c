import math

import torch

from selfsup.losses import dcl_loss, dclw_loss, nt_xent


def reference_decoupled(z1, z2, t, sigma=None):
    """DCL / DCLW (Yeh et al. 2022) term by term over the 2N anchors:
    -w_i s(i, pair)/t + log sum_{k not in {i, pair}} exp(s(i, k)/t)."""
    z = [[x / math.sqrt(sum(y * y for y in v)) for x in v] for v in torch.cat([z1, z2]).tolist()]
    n = len(z1)
    s = lambda i, k: sum(a * b for a, b in zip(z[i], z[k]))
    positives = [s(i, i + n) for i in range(n)]
    mean_exp = sum(math.exp(p / sigma) for p in positives) / n if sigma else None
    total = 0.0
    for i in range(2 * n):
        pair = (i + n) % (2 * n)
        weight = 2 - math.exp(s(i, pair) / sigma) / mean_exp if sigma else 1.0
        negatives = sum(math.exp(s(i, k) / t) for k in range(2 * n) if k not in (i, pair))
        total += -weight * s(i, pair) / t + math.log(negatives)
    return total / (2 * n)


def test_dcl_matches_formula():
    torch.manual_seed(0)
    z1, z2 = torch.randn(5, 4), torch.randn(5, 4)
    for t in (0.1, 0.5):
        assert abs(dcl_loss(z1, z2, t).item() - reference_decoupled(z1, z2, t)) < 1e-5


def test_dclw_matches_formula():
    torch.manual_seed(1)
    z1, z2 = torch.randn(6, 4), torch.randn(6, 4)
    for t, sigma in ((0.1, 0.5), (0.5, 1.0)):
        assert abs(dclw_loss(z1, z2, t, sigma).item() - reference_decoupled(z1, z2, t, sigma)) < 1e-5


def test_positive_is_not_in_the_denominator():
    # two samples, identical views, orthogonal embeddings: each anchor's negatives are the
    # other sample's two views (cos 0), so L = -1/t + log 2. NT-Xent adds e^{1/t} inside the log.
    z, t = torch.eye(2), 0.5
    assert abs(dcl_loss(z, z, t).item() - (-1 / t + math.log(2))) < 1e-6
    assert abs(nt_xent(z, z, t).item() - (-1 / t + math.log(math.exp(1 / t) + 2))) < 1e-6


def test_nt_xent_minus_dcl_is_the_positive_share_of_the_denominator():
    # NT-Xent's log-denominator includes exp(s_pos/t); DCL's does not, so per anchor
    # NT-Xent - DCL = log(1 + exp(s_pos/t) / sum_negatives exp(s_neg/t))
    torch.manual_seed(2)
    z1, z2, t = torch.randn(4, 3), torch.randn(4, 3), 0.2
    z = [[x / math.sqrt(sum(y * y for y in v)) for x in v] for v in torch.cat([z1, z2]).tolist()]
    s = lambda i, k: sum(a * b for a, b in zip(z[i], z[k]))
    gap = 0.0
    for i in range(8):
        pair = (i + 4) % 8
        negatives = sum(math.exp(s(i, k) / t) for k in range(8) if k not in (i, pair))
        gap += math.log(1 + math.exp(s(i, pair) / t) / negatives) / 8
    assert abs((nt_xent(z1, z2, t) - dcl_loss(z1, z2, t)).item() - gap) < 1e-5


def test_dclw_equals_dcl_when_all_positives_are_equally_close():
    z = torch.eye(4)
    assert abs(dclw_loss(z, z, 0.1).item() - dcl_loss(z, z, 0.1).item()) < 1e-6
