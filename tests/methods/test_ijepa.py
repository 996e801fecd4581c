import pytest
import torch
import torch.nn.functional as F

from selfsup import augment, backbones, methods
from selfsup.backbones.vit import ViT
from selfsup.methods.ijepa import linear_momentum


def make_ijepa(image_size=32, **options):
    torch.manual_seed(0)
    vit = ViT(width=32, depth=2, heads=2, image_size=image_size)
    return methods.create("ijepa", vit, predictor_dim=16, predictor_depth=1, **options)


def test_training_step_on_recipe_views_reaches_backbone():
    torch.manual_seed(0)
    ijepa = methods.create("ijepa", backbones.create("vit_tiny", image_size=16))
    images = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    views = augment.create(ijepa.recipe, 16)(images, torch.Generator().manual_seed(0), [0.5] * 3, [0.25] * 3)
    assert len(views) == 1
    out = ijepa.training_step(views)
    loss, logs = out["loss"], out["logs"]
    assert torch.isfinite(loss) and logs["momentum"] == 0.996
    loss.backward()
    assert ijepa.backbone.patch_embed.proj.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in ijepa.target_encoder.parameters())
    assert ijepa.predictor.mask_token.grad is not None


def test_needs_a_vit():
    with pytest.raises(ValueError, match="I-JEPA needs a ViT backbone"):
        methods.create("ijepa", backbones.create("smallcnn"))


def test_masks_advance_with_the_step():
    ijepa = make_ijepa()
    c1, t1 = ijepa.sample_masks(8)
    c2, t2 = ijepa.sample_masks(8)
    assert t1.shape[:2] == (8, 4) and int(ijepa.mask_step) == 2
    assert t1.shape != t2.shape or not torch.equal(t1, t2)
    assert torch.equal(make_ijepa().sample_masks(8)[1], t1)


def test_loss_matches_per_sample_per_block_computation():
    ijepa = make_ijepa(image_size=16).eval()
    images = torch.randn(2, 3, 16, 16)
    context = torch.tensor([[0, 1, 4, 5, 8], [2, 3, 6, 7, 11]])
    targets = torch.tensor([[[10, 11, 14, 15], [2, 3, 6, 7]], [[8, 9, 12, 13], [0, 1, 4, 5]]])
    loss = ijepa.prediction_loss(images, context, targets)
    total = 0.0
    with torch.no_grad():
        full = ijepa.target_encoder.tokens(images)
    for s in range(2):
        encoded = ijepa.backbone.tokens(images[s:s + 1], context[s:s + 1])
        for b in range(2):
            predicted = ijepa.predictor(encoded, context[s:s + 1], targets[s, b][None])[0]
            target = F.layer_norm(full[s, targets[s, b]], (32,))
            total += ((predicted - target) ** 2).sum(-1).mean() / 32
    assert torch.allclose(loss, total / 4, atol=1e-5)


def test_context_encoder_never_sees_target_patches():
    ijepa = make_ijepa(image_size=16).eval()
    images = torch.randn(1, 3, 16, 16)
    context = torch.tensor([[0, 1, 2, 3]])
    encoded = ijepa.backbone.tokens(images, context)
    changed = images.clone()
    changed[:, :, 8:, :] = 7.0  # rows 2-3 of the patch grid, not in the context
    assert torch.allclose(ijepa.backbone.tokens(changed, context), encoded, atol=1e-6)


def test_linear_momentum_schedule_and_ema():
    assert linear_momentum(0.996, 0.0) == 0.996
    assert abs(linear_momentum(0.996, 0.5) - 0.998) < 1e-12 and linear_momentum(0.996, 1.0) == 1.0
    ijepa = make_ijepa(base_momentum=0.9)
    with torch.no_grad():
        for p in ijepa.backbone.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p))
    online = [p.clone() for p in ijepa.backbone.parameters()]
    target = [p.clone() for p in ijepa.target_encoder.parameters()]
    ijepa.after_optimizer_step(0.25)
    m = 1 - 0.1 * 0.75
    assert abs(ijepa.momentum - m) < 1e-12
    for o, t, new in zip(online, target, ijepa.target_encoder.parameters()):
        assert torch.allclose(new, m * t + (1 - m) * o, atol=1e-6)


def test_defaults_follow_the_paper():
    from selfsup.methods import IJEPA
    assert IJEPA.optimizer.name == "adamw" and IJEPA.optimizer.weight_decay == 0.04
    assert IJEPA.default_backbone == "vit_mini"  # ours: small images on a CPU
    ijepa = make_ijepa()
    assert ijepa.base_momentum == 0.996
    assert ijepa.masks == dict(num_targets=4, target_scale=(0.15, 0.2), target_aspect=(0.75, 1.5),
                               context_scale=(0.85, 1.0), min_context=4)
