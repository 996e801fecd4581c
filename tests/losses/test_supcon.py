import math

import torch

from selfsup.losses import nt_xent, supcon_loss


def reference_supcon(z1, z2, labels, temperature):
    """L_out of the SupCon paper (eq. 2), written out term by term: for each of the 2N
    views, minus the mean over its positives of the log-probability of that positive."""
    z = torch.cat([z1, z2])
    z = z / z.norm(dim=1, keepdim=True)
    y = torch.cat([labels, labels]).tolist()
    views = len(z)
    total = 0.0
    for i in range(views):
        denominator = sum(math.exp(float(z[i] @ z[a]) / temperature) for a in range(views) if a != i)
        positives = [p for p in range(views) if p != i and y[p] == y[i]]
        total += -sum(math.log(math.exp(float(z[i] @ z[p]) / temperature) / denominator)
                      for p in positives) / len(positives)
    return total / views


def supcontrast_loss(z1, z2, labels, temperature=0.07, base_temperature=0.07):
    """SupConLoss.forward of the authors' code (HobbitLong/SupContrast losses.py), contrast
    mode 'all', on features (N, 2, d), written out again."""
    features = torch.nn.functional.normalize(torch.stack([z1, z2], dim=1), dim=2)
    batch_size, anchor_count = features.shape[:2]
    mask = (labels[:, None] == labels[None, :]).float().repeat(anchor_count, anchor_count)
    contrast_feature = torch.cat(torch.unbind(features, dim=1), dim=0)
    anchor_dot_contrast = contrast_feature @ contrast_feature.T / temperature
    logits = anchor_dot_contrast - anchor_dot_contrast.max(dim=1, keepdim=True).values.detach()
    logits_mask = 1 - torch.eye(batch_size * anchor_count)
    mask = mask * logits_mask
    exp_logits = torch.exp(logits) * logits_mask
    log_prob = logits - torch.log(exp_logits.sum(1, keepdim=True))
    mean_log_prob_pos = (mask * log_prob).sum(1) / mask.sum(1)
    loss = -(temperature / base_temperature) * mean_log_prob_pos
    return loss.view(anchor_count, batch_size).mean()


def test_supcon_matches_the_authors_code():
    torch.manual_seed(0)
    z1, z2 = torch.randn(6, 5), torch.randn(6, 5)
    labels = torch.tensor([0, 1, 0, 2, 1, 0])
    expected = supcontrast_loss(z1, z2, labels, temperature=0.1, base_temperature=0.07)
    assert abs(supcon_loss(z1, z2, labels, 0.1).item() - expected.item()) < 1e-5  # default base 0.07
    # the factor is tau / tau_base: 0.1 / 0.07 times the paper's eq. 2
    assert abs(supcon_loss(z1, z2, labels, 0.1).item()
               - 0.1 / 0.07 * reference_supcon(z1, z2, labels, 0.1)) < 1e-5
    expected = supcontrast_loss(z1, z2, labels, temperature=0.5, base_temperature=0.2)
    assert abs(supcon_loss(z1, z2, labels, 0.5, 0.2).item() - expected.item()) < 1e-5


def test_supcon_matches_formula():
    torch.manual_seed(0)
    z1, z2 = torch.randn(6, 5), torch.randn(6, 5)
    labels = torch.tensor([0, 1, 0, 2, 1, 0])  # label 2 appears once: its only positive is its other view
    for temperature in (0.1, 0.5):
        expected = reference_supcon(z1, z2, labels, temperature)
        loss = supcon_loss(z1, z2, labels, temperature, base_temperature=temperature)
        assert abs(loss.item() - expected) < 1e-5


def test_supcon_with_distinct_labels_is_nt_xent():
    torch.manual_seed(1)
    z1, z2 = torch.randn(5, 4), torch.randn(5, 4)
    assert torch.allclose(supcon_loss(z1, z2, torch.arange(5), 0.2, 0.2), nt_xent(z1, z2, 0.2), atol=1e-6)


def test_supcon_hand_case():
    # samples 0 and 1 share a label, unit embeddings e0, e0, e1 (orthogonal), identical views
    z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    t = 0.5
    # anchors of label 0: 3 positives at cos 1 and 2 others at cos 0 in the denominator
    loss_0 = -math.log(math.exp(1 / t) / (3 * math.exp(1 / t) + 2))
    # anchors of label 1: its other view (cos 1) is the only positive, 4 views at cos 0
    loss_1 = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 4))
    expected = (4 * loss_0 + 2 * loss_1) / 6
    assert abs(supcon_loss(z, z, torch.tensor([0, 0, 1]), t, t).item() - expected) < 1e-6
