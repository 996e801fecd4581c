import torch

from selfsup.losses import jepa_loss


def test_matches_mean_squared_distance_to_layer_normalised_targets():
    g = torch.Generator().manual_seed(0)
    prediction, target = torch.randn(2, 4, 3, 8, generator=g), torch.randn(2, 4, 3, 8, generator=g) * 3 + 1
    total = 0.0
    for s in range(2):
        for block in range(4):
            for patch in range(3):
                t = target[s, block, patch]
                t = (t - t.mean()) / torch.sqrt(t.var(unbiased=False) + 1e-5)
                total += ((prediction[s, block, patch] - t) ** 2).sum() / 8
    assert torch.allclose(jepa_loss(prediction, target), total / 24, atol=1e-5)


def test_target_scale_and_offset_per_patch_do_not_matter():
    g = torch.Generator().manual_seed(1)
    prediction, target = torch.randn(5, 16, generator=g), torch.randn(5, 16, generator=g)
    scale, shift = torch.rand(5, 1, generator=g) * 4 + 0.5, torch.randn(5, 1, generator=g) * 3
    assert torch.allclose(jepa_loss(prediction, target * scale + shift), jepa_loss(prediction, target), atol=1e-4)


def test_target_gets_no_gradient():
    prediction = torch.randn(4, 6, requires_grad=True)
    target = torch.randn(4, 6, requires_grad=True)
    jepa_loss(prediction, target).backward()
    assert prediction.grad is not None and target.grad is None
