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
