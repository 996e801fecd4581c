import math

import torch

from selfsup import backbones, methods
from selfsup.methods.byol import cosine_momentum


def make_byol(**options):
    torch.manual_seed(0)
    return methods.create("byol", backbones.create("smallcnn"), hidden_dim=32, projection_dim=16, **options)


def test_cosine_momentum_schedule():
    assert cosine_momentum(0.996, 0.0) == 0.996
    assert abs(cosine_momentum(0.996, 1.0) - 1.0) < 1e-12
    assert abs(cosine_momentum(0.996, 0.5) - (1 - 0.004 * 0.5)) < 1e-12
    k, K = 3, 10
    assert abs(cosine_momentum(0.99, k / K) - (1 - 0.01 * (math.cos(math.pi * k / K) + 1) / 2)) < 1e-12


def test_ema_update_formula():
    byol = make_byol(base_momentum=0.9)
    with torch.no_grad():
        for p in byol.backbone.parameters():
            p.add_(torch.randn_like(p))
    online = [p.clone() for p in byol.backbone.parameters()]
    target = [p.clone() for p in byol.target_backbone.parameters()]
    byol.after_optimizer_step(0.0)  # momentum = base = 0.9 at step 0
    for o, t, new in zip(online, target, byol.target_backbone.parameters()):
        assert torch.allclose(new, 0.9 * t + 0.1 * o, atol=1e-6)


def test_target_network_gets_no_gradient():
    byol = make_byol()
    views = [torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16)]
    loss = byol.training_step(views)["loss"]
    loss.backward()
    assert all(p.grad is None for p in byol.target_backbone.parameters())
    assert all(p.grad is None for p in byol.target_projector.parameters())
    assert all(p.grad is not None for p in byol.predictor.parameters())
    assert any(p.grad.abs().sum() > 0 for p in byol.backbone.parameters())


def test_loss_is_symmetric_sum_of_both_directions():
    byol = make_byol()
    byol.eval()  # fixed BatchNorm statistics so the pieces can be recomputed
    v1, v2 = torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16)
    loss = byol.training_step([v1, v2])["loss"]
    from selfsup.losses import normalized_mse
    q = lambda v: byol.predictor(byol.projector(byol.backbone(v)))
    t = lambda v: byol.target_projector(byol.target_backbone(v))
    expected = normalized_mse(q(v1), t(v2)) + normalized_mse(q(v2), t(v1))
    assert torch.allclose(loss, expected, atol=1e-5)
