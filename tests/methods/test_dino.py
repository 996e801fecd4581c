import inspect
import math

import torch

from selfsup import augment, backbones, methods
from selfsup.losses import dino_loss
from selfsup.methods.byol import cosine_momentum
from selfsup.heads import DINOHead
from selfsup.methods.dino import teacher_temperature_at
from selfsup.methods.multicrop import forward_multicrop


def make_dino(**options):
    torch.manual_seed(0)
    options = {"hidden_dim": 32, "bottleneck_dim": 8, "out_dim": 16, **options}
    return methods.create("dino", backbones.create("smallcnn"), **options)


def multicrop_views(n=8, local_crops=3, seed=0):
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    recipe = augment.create(methods.METHODS["dino"].recipe, 32, local_crops=local_crops)
    return recipe(images, torch.Generator().manual_seed(seed), [0.5] * 3, [0.25] * 3)


def test_training_step_on_recipe_views_reaches_backbone_not_teacher():
    torch.manual_seed(0)
    dino = methods.create("dino", backbones.create("smallcnn"))
    views = multicrop_views()
    assert [v.shape[-1] for v in views] == [32, 32, 14, 14, 14]
    out = dino.training_step(views)
    loss, logs = out["loss"], out["logs"]
    assert torch.isfinite(loss) and logs["teacher_temperature"] == 0.04 and logs["momentum"] == 0.99
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in dino.backbone.parameters())
    assert all(p.grad is not None for p in dino.head.parameters())
    assert all(p.grad is None for p in dino.teacher_backbone.parameters())
    assert all(p.grad is None for p in dino.teacher_head.parameters())
    assert dino.center.shape == (1, 4096) and dino.head.last_layer.weight.shape == (4096, 256)
    assert (dino.name, dino.recipe, dino.year) == ("dino", "dino", 2021) and "Vision Transformers" in dino.paper
    assert (dino.optimizer.name, dino.optimizer.lr, dino.optimizer.weight_decay) == ("adamw", 0.0005, 0.04)
    assert {"temperature", "base_momentum", "gather_distributed"} <= set(
        inspect.signature(type(dino).__init__).parameters)


def test_teacher_sees_only_the_global_views():
    dino = make_dino()
    seen = {"student": [], "teacher": []}
    dino.backbone.register_forward_hook(lambda m, i, o: seen["student"].append(i[0].shape[-1]))
    dino.teacher_backbone.register_forward_hook(lambda m, i, o: seen["teacher"].append(i[0].shape[-1]))
    dino.training_step(multicrop_views(n=4))
    assert seen == {"student": [32, 14], "teacher": [32]}  # one forward per crop size


def test_loss_and_centre_update():
    dino = make_dino(temperature=0.2, center_momentum=0.8)
    dino.eval()
    with torch.no_grad():
        dino.center.normal_()
    center = dino.center.clone()
    views = multicrop_views()
    loss = dino.training_step(views)["loss"]
    student = dino.head(forward_multicrop(dino.backbone, views)).chunk(len(views))
    teacher = dino.teacher_head(forward_multicrop(dino.teacher_backbone, views[:2]))
    assert torch.allclose(loss, dino_loss(student, teacher.chunk(2), center, 0.2, 0.04), atol=1e-5)
    # the centre is an EMA of the teacher outputs' mean over both global views of the batch
    assert torch.allclose(dino.center, 0.8 * center + 0.2 * teacher.mean(dim=0, keepdim=True), atol=1e-6)
    assert "center" in dino.state_dict()


def test_teacher_temperature_schedule():
    assert teacher_temperature_at(0.0) == 0.04
    assert abs(teacher_temperature_at(0.15) - 0.055) < 1e-12
    assert teacher_temperature_at(0.3) == 0.07 and teacher_temperature_at(0.9) == 0.07
    assert teacher_temperature_at(0.5, 0.02, 0.06, warmup=0.0) == 0.06
    dino = make_dino(teacher_temperature_warmup=0.5)
    dino.after_optimizer_step(0.25)  # the step after this one uses the new temperature
    logs = dino.training_step(multicrop_views(n=4))["logs"]
    assert abs(logs["teacher_temperature"] - 0.055) < 1e-9
    restored = make_dino(teacher_temperature_warmup=0.5)
    restored.load_state_dict(dino.state_dict())  # the schedule's position is checkpointed
    assert abs(restored.teacher_temperature - 0.055) < 1e-9


def test_teacher_is_an_ema_of_the_student_with_cosine_momentum():
    dino = make_dino(base_momentum=0.9)
    with torch.no_grad():
        for p in [*dino.backbone.parameters(), *dino.head.parameters()]:
            p.add_(torch.randn_like(p))
    student = [p.clone() for p in [*dino.backbone.parameters(), *dino.head.parameters()]]
    teacher = [p.clone() for p in [*dino.teacher_backbone.parameters(), *dino.teacher_head.parameters()]]
    dino.after_optimizer_step(0.5)
    m = cosine_momentum(0.9, 0.5)
    assert abs(m - (1 - 0.1 * (math.cos(math.pi * 0.5) + 1) / 2)) < 1e-12
    updated = [*dino.teacher_backbone.parameters(), *dino.teacher_head.parameters()]
    for s, t, new in zip(student, teacher, updated):
        assert torch.allclose(new, m * t + (1 - m) * s, atol=1e-6)


def test_head_is_cosine_to_unit_prototypes():
    torch.manual_seed(0)
    head = DINOHead(12, out_dim=10, hidden_dim=16, bottleneck_dim=4)
    with torch.no_grad():
        head.last_layer.weight.mul_(5)  # the weight's norm does not matter
    x = torch.randn(6, 12)
    out = head(x)
    bottleneck = torch.nn.functional.normalize(head.mlp(x), dim=1)
    prototypes = torch.nn.functional.normalize(head.last_layer.weight, dim=1)
    assert torch.allclose(out, bottleneck @ prototypes.T, atol=1e-6)
    assert out.abs().max() <= 1 + 1e-6
    assert [type(m).__name__ for m in head.mlp] == ["Linear", "GELU", "Linear", "GELU", "Linear"]
    assert head.last_layer.bias is None


def test_weight_decay_rises_along_a_cosine_from_the_runs_to_weight_decay_end():
    """main_dino.py: wd_schedule = cosine_scheduler(0.04, 0.4, ...), value end + (start - end)
    (1 + cos(pi i / N)) / 2 at iteration i of N; only the decayed group follows it."""
    from selfsup.train.module import PretrainModule

    dino = make_dino()
    assert (dino.weight_decay_end, dino.clip_grad, dino.freeze_last_layer) == (0.4, 3.0, 1)  # the paper's
    for progress in (0.0, 0.3, 0.5, 1.0):
        expected = 0.4 + (0.04 - 0.4) * (1 + math.cos(math.pi * progress)) / 2
        assert abs(dino.weight_decay_at(progress, 0.04) - expected) < 1e-12
    assert abs(dino.weight_decay_at(0.0, 0.04) - 0.04) < 1e-12 and abs(dino.weight_decay_at(1.0, 0.04) - 0.4) < 1e-12
    module = PretrainModule(dino, None, [0.5] * 3, [0.5] * 3, optimizer="adamw", lr=1e-3, weight_decay=0.04,
                            warmup_epochs=0, epochs=2, steps_per_epoch=2, seed=0, batch_size=4)
    optimizer = module.configure_optimizers()["optimizer"]
    for step in range(4):
        module.trainer = type("T", (), {"global_step": step, "current_epoch": step // 2})()
        module.on_before_optimizer_step(optimizer)
        decayed, other = optimizer.param_groups
        assert abs(decayed["weight_decay"] - dino.weight_decay_at(step / 4, 0.04)) < 1e-12
        assert other["weight_decay"] == 0.0


def test_gradients_are_clipped_per_parameter_and_the_last_layer_waits_an_epoch():
    dino = make_dino(clip_grad=0.5)
    parameters = [*dino.backbone.parameters(), *dino.head.parameters()]
    for p in parameters:
        p.grad = torch.randn_like(p) * 3
    before = [p.grad.clone() for p in parameters]
    dino.before_optimizer_step(0.1, epoch=0)
    assert dino.head.last_layer.weight.grad is None  # epoch 0: no update of the last layer at all
    for p, g in zip(parameters, before):
        if p is dino.head.last_layer.weight:
            continue
        # DINO's utils.clip_gradients: each gradient scaled to norm 0.5 if it was larger
        expected = g * min(1.0, 0.5 / (g.norm().item() + 1e-6))
        assert torch.allclose(p.grad, expected, atol=1e-6)
        assert p.grad.norm() <= 0.5 + 1e-5
    dino.head.last_layer.weight.grad = torch.ones_like(dino.head.last_layer.weight)
    dino.before_optimizer_step(0.6, epoch=1)
    assert dino.head.last_layer.weight.grad is not None  # from epoch 1 on it trains
    unclipped = make_dino(clip_grad=0.0, freeze_last_layer=0)
    grads = [torch.randn_like(p) * 10 for p in unclipped.parameters()]
    for p, g in zip(unclipped.parameters(), grads):
        p.grad = g.clone()
    unclipped.before_optimizer_step(0.0, epoch=0)
    assert all(torch.equal(p.grad, g) for p, g in zip(unclipped.parameters(), grads))


def test_a_vit_embeds_by_its_class_token():
    torch.manual_seed(0)
    dino = methods.create("dino", backbones.create("vit_mini", image_size=16), hidden_dim=32, bottleneck_dim=8,
                          out_dim=16)
    vit = dino.backbone
    assert vit.has_class_token and dino.teacher_backbone.has_class_token
    x = torch.randn(3, 3, 16, 16)
    vit.eval()
    tokens = vit.embed_patches(x)
    cls = vit.net.cls_token.expand(3, -1, -1)
    assert torch.allclose(vit(x), vit.encode(torch.cat([cls, tokens], dim=1))[:, 0], atol=1e-6)
    assert torch.allclose(vit(x), vit.net(x), atol=1e-5)  # timm's forward, so it exports as is
    assert vit.model_args["class_token"] and vit.model_args["global_pool"] == "token"
    assert "backbone.net.cls_token" in dino.state_dict()
    pooled = methods.create("dino", backbones.create("vit_mini", image_size=16), class_token=False)
    assert not pooled.backbone.has_class_token
    assert not hasattr(make_dino().backbone, "has_class_token")  # a CNN has none to add
