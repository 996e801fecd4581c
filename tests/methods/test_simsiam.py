import torch
import torch.nn.functional as F

from selfsup import backbones, methods


def views(n=8):
    return [torch.randn(n, 3, 16, 16), torch.randn(n, 3, 16, 16)]


def test_loss_is_a_negative_cosine():
    torch.manual_seed(0)
    simsiam = methods.create("simsiam", backbones.create("smallcnn"))
    loss = simsiam.training_step(views())["loss"]
    assert -1 <= loss.item() <= 1


def test_heads_follow_the_paper():
    simsiam = methods.create("simsiam", backbones.create("smallcnn"))
    output_norm = simsiam.projector[-1]
    assert isinstance(output_norm, torch.nn.BatchNorm1d) and not output_norm.affine
    linears = [m for m in simsiam.predictor.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [512, 2048]  # bottleneck predictor
    assert simsiam.optimizer.name == "sgd" and simsiam.optimizer.lr == 0.05


def backbone_gradients(simsiam, loss):
    simsiam.zero_grad()
    loss.backward()
    return [p.grad.clone() for p in simsiam.backbone.parameters()]


def test_stop_gradient_on_the_projection_side():
    torch.manual_seed(0)
    simsiam = methods.create("simsiam", backbones.create("smallcnn"), hidden_dim=32, projection_dim=16,
                             predictor_hidden_dim=8)
    simsiam.eval()  # fixed BatchNorm statistics, so every recomputation is identical
    v1, v2 = views(6)
    loss = simsiam.training_step([v1, v2])["loss"]
    got = backbone_gradients(simsiam, loss)

    def symmetric(detach):
        """-cos(p1, z2)/2 - cos(p2, z1)/2, with or without the stop-gradient on z."""
        z1, z2 = simsiam.projector(simsiam.backbone(v1)), simsiam.projector(simsiam.backbone(v2))
        p1, p2 = simsiam.predictor(z1), simsiam.predictor(z2)
        if detach:
            z1, z2 = z1.detach(), z2.detach()
        return -(F.cosine_similarity(p1, z2).mean() + F.cosine_similarity(p2, z1).mean()) / 2

    with_stop = symmetric(detach=True)
    assert torch.allclose(loss, with_stop, atol=1e-6)
    expected = backbone_gradients(simsiam, with_stop)
    without_stop = backbone_gradients(simsiam, symmetric(detach=False))
    assert all(torch.allclose(g, e, atol=1e-6) for g, e in zip(got, expected))
    assert any(not torch.allclose(g, w, atol=1e-6) for g, w in zip(got, without_stop))
