import math

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


def test_predictor_lr_is_fixed_while_the_rest_follows_the_cosine():
    """The paper's --fix-pred-lr: the predictor keeps the base lr at every step (main_simsiam.py
    adjust_learning_rate), the other parameters decay as lr * 0.5 (1 + cos(pi t / T))."""
    from selfsup.train.module import PretrainModule

    simsiam = methods.create("simsiam", backbones.create("smallcnn"), hidden_dim=16, projection_dim=8,
                             predictor_hidden_dim=4)
    module = PretrainModule(simsiam, None, [0.5] * 3, [0.5] * 3, optimizer="sgd", lr=0.1, weight_decay=1e-4,
                            warmup_epochs=0, epochs=2, steps_per_epoch=5, seed=0, batch_size=4)
    setup = module.configure_optimizers()
    optimizer, schedule = setup["optimizer"], setup["lr_scheduler"]["scheduler"]
    predictor = {id(p) for p in simsiam.predictor.parameters()}
    fixed = [g for g in optimizer.param_groups if g["fixed_lr"]]
    assert {id(p) for g in fixed for p in g["params"]} == predictor
    assert all(id(p) not in predictor for g in optimizer.param_groups if not g["fixed_lr"] for p in g["params"])
    assert [g["weight_decay"] for g in fixed] == [1e-4, 0.0]  # still decayed like the others
    for step in range(10):
        for group in optimizer.param_groups:
            expected = 0.1 if group["fixed_lr"] else 0.1 * 0.5 * (1 + math.cos(math.pi * step / 10))
            assert abs(group["lr"] - expected) < 1e-12, (step, group["fixed_lr"])
        optimizer.step()
        schedule.step()
    # off: one schedule for every parameter, and no warm-up by default (the paper has none)
    plain = methods.create("simsiam", backbones.create("smallcnn"), fix_predictor_lr=False)
    assert plain.fixed_lr_parameters() == [] and methods.SimSiam.warmup_fraction == 0.0
