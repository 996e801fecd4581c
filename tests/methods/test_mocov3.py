import torch

from selfsup import backbones, methods
from selfsup.losses import batch_info_nce
from selfsup.methods.byol import cosine_momentum


def make_mocov3(**options):
    torch.manual_seed(0)
    return methods.create("mocov3", backbones.create("smallcnn"), hidden_dim=32, projection_dim=16, **options)


def views(n=8):
    return [torch.randn(n, 3, 16, 16), torch.randn(n, 3, 16, 16)]


def test_momentum_encoder_gets_no_gradient_and_has_no_predictor():
    mocov3 = make_mocov3()
    loss = mocov3.training_step(views())["loss"]
    loss.backward()
    assert all(p.grad is None for p in mocov3.momentum_backbone.parameters())
    assert all(p.grad is None for p in mocov3.momentum_projector.parameters())
    assert all(p.grad is not None for p in mocov3.predictor.parameters())
    assert not hasattr(mocov3, "momentum_predictor")


def test_loss_is_symmetric_and_scaled_by_two_tau():
    mocov3 = make_mocov3(temperature=0.3)
    mocov3.eval()
    v1, v2 = views()
    loss = mocov3.training_step([v1, v2])["loss"]
    q = lambda v: mocov3.predictor(mocov3.projector(mocov3.backbone(v)))
    k = lambda v: mocov3.momentum_projector(mocov3.momentum_backbone(v))
    expected = 2 * 0.3 * (batch_info_nce(q(v1), k(v2), 0.3) + batch_info_nce(q(v2), k(v1), 0.3))
    assert torch.allclose(loss, expected, atol=1e-5)


def test_cosine_momentum_schedule_and_ema():
    mocov3 = make_mocov3(base_momentum=0.9)
    with torch.no_grad():
        for p in mocov3.projector.parameters():
            p.add_(torch.randn_like(p))
    online = [p.clone() for p in mocov3.projector.parameters()]
    target = [p.clone() for p in mocov3.momentum_projector.parameters()]
    mocov3.after_optimizer_step(0.5)
    m = cosine_momentum(0.9, 0.5)
    assert mocov3.momentum == m
    for o, t, new in zip(online, target, mocov3.momentum_projector.parameters()):
        assert torch.allclose(new, m * t + (1 - m) * o, atol=1e-6)
