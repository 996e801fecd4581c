import torch

from selfsup import backbones, methods
from selfsup.losses import batch_info_nce
from selfsup.methods.base import OptimizerDefaults
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


def linear_count(module):
    return sum(isinstance(m, torch.nn.Linear) for m in module.modules())


def test_the_backbone_picks_the_papers_resnet_or_vit_setting():
    """moco-v3 builder.py: MoCo_ResNet has a 2-layer projector and a predictor without output
    BN, MoCo_ViT a 3-layer projector and a predictor with it; CONFIG.md: tau 1.0 with LARS
    for ResNets, tau 0.2 with AdamW lr 1.5e-4, wd 0.1, 40 of 300 warm-up epochs for ViTs."""
    resnet = make_mocov3()
    assert resnet.temperature == 1.0 and linear_count(resnet.projector) == 2
    assert not isinstance(resnet.predictor[-1], torch.nn.BatchNorm1d)
    assert isinstance(resnet.projector[-1], torch.nn.BatchNorm1d) and not resnet.projector[-1].affine
    torch.manual_seed(0)
    vit = methods.create("mocov3", backbones.create("vit_mini", image_size=16), hidden_dim=32, projection_dim=16)
    assert vit.temperature == 0.2 and linear_count(vit.projector) == 3
    assert isinstance(vit.predictor[-1], torch.nn.BatchNorm1d) and not vit.predictor[-1].affine
    assert vit.backbone.has_class_token and vit.momentum_backbone.has_class_token
    assert make_mocov3(temperature=0.5).temperature == 0.5  # an explicit value wins
    settings = {name: methods.MoCoV3.paper_settings(name) for name in ("resnet18", "smallcnn", "vit_tiny",
                                                                        "timm/vit_small_patch16_224",
                                                                        "timm/resnet50", "torchvision/vit_b_16")}
    for name in ("resnet18", "smallcnn", "timm/resnet50"):
        assert settings[name]["optimizer"] == OptimizerDefaults("lars", 0.6, 1e-6), name
        assert settings[name]["warmup_fraction"] == 0.1 and settings[name]["crop_min_scale"] == 0.2
    for name in ("vit_tiny", "timm/vit_small_patch16_224", "torchvision/vit_b_16"):
        assert settings[name]["optimizer"] == OptimizerDefaults("adamw", 1.5e-4, 0.1), name
        assert abs(settings[name]["warmup_fraction"] - 40 / 300) < 1e-12 and settings[name]["crop_min_scale"] is None
